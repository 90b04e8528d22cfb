"""How the stack-file loader does on compose files from elsewhere (issue 13): accepted, rejected
(and why, grouped), crashed; and, where an expected verdict is known, how often we agree.

    .venv/bin/python benchmarks/compose_corpus.py [--go-tests] [--schema orchestrator/stackfile/compose-spec.json] [--show N] DIR...

Walks each DIR for compose and stack files (`compose.yaml`, `docker-compose.*.yml`,
`docker-stack.yml`, `*-stack.yml`, ...) and loads each with `load_stack`, the way
`orchestrator config -c FILE` does (an empty environment plus the `.env` beside the file).
The corpus is not part of this repository (licences; and the loader must not be tuned to it):
point the script at checkouts of public projects.

Expected verdicts, where we can know them (no compose-go binary runs here: there is no Go module
proxy), come from:
- `--go-tests`: the YAML inlined in compose-go's and docker/cli's loader tests (`*_test.go`
  calling `loadYAML(...)`), with the verdict and reason of the assertion that follows the call
  (`assert.NilError` -> valid; `ErrorContains(err, "why")` -> invalid, for that reason);
- `--schema`: the compose-spec JSON schema (compose-go's copy) applied with `jsonschema`, plus
  compose-go's consistency rules that the schema cannot say (a service needs an image, a build or
  a provider; references to networks, volumes, secrets, configs and services must be defined).
  A partial oracle: it does not interpolate, and it trusts a file that uses extends or include.
A file whose only problems come from its environment (a required variable, a missing env_file)
is counted apart: compose-go fails on it too without that environment.

"Rejected for the right reason" means one of our problems is at the key path the expected error
names (or under it), or, when the expected error names no key path, shares its distinctive words.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ruamel.yaml import YAML  # noqa: E402

from orchestrator.stackfile import StackFileError, load_stack  # noqa: E402

COMPOSE_NAME = re.compile(r"(?i)^(docker-)?(compose|stack)([-._][\w.-]*)?\.ya?ml$|^[\w.-]*[-_.](compose|stack)([-._][\w.-]*)?\.ya?ml$")
SKIPPED_DIRS = {".git", ".github", "node_modules", "vendor", "reference"}
ENVIRONMENTAL = ("required variable", "cannot read env file", "environment variable", "is the variable it names set")


@dataclass
class Case:
    path: Path
    source: str  # "compose-go tests" | "docker/cli tests" | "files"
    expected: bool | None = None  # True valid, False invalid, None unknown
    reason: str = ""  # the expected error, or the schema's key path
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Outcome:
    case: Case
    verdict: str  # accepted | rejected | rejected-env | crashed
    problems: list[tuple[str, str]] = field(default_factory=list)  # (key path, message)


# --------------------------------------------------------------------------- finding cases


def compose_files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        for directory, subdirs, files in os.walk(root):
            subdirs[:] = sorted(d for d in subdirs if d not in SKIPPED_DIRS)
            for name in sorted(files):
                if COMPOSE_NAME.match(name):
                    yield Path(directory) / name


_CALL = re.compile(r"loadYAML(WithEnv)?\(\s*(`(?P<text>[^`]*)`|(?P<var>\w+))(?P<rest>[^\n]*)")
_ENV = re.compile(r'"(\w+)":\s*"([^"]*)"')
_ASSERT = re.compile(
    r"assert\.NilError\(t, err\)|(?:assert\.(?:ErrorContains|Error)\(t, err, |is\.ErrorContains\(err, )"
    r"(?P<why>\"(?:[^\"\\]|\\.)*\"|`[^`]*`)|err != nil|assert\.Check\(t, err == nil\)"
)


def go_test_cases(roots: list[Path], into: Path) -> Iterator[Case]:
    """The inline YAML of Go loader tests, each written to its own file under `into`."""
    for root in roots:
        for test in sorted(root.rglob("*_test.go")):
            source = test.read_text(errors="replace")
            if "loadYAML" not in source:
                continue
            variables = dict(re.findall(r"var (\w+) = `([^`]*)`", source))
            for index, call in enumerate(_CALL.finditer(source)):
                text = call.group("text") if call.group("text") is not None else variables.get(call.group("var") or "")
                if text is None:
                    continue
                tail = source[call.end(): call.end() + 1500]
                tail = tail.split("loadYAML", 1)[0].split("\nfunc ", 1)[0]
                found = _ASSERT.search(tail)
                if found is None:
                    continue
                expected = found.group(0).startswith(("assert.NilError", "assert.Check(t, err == nil"))
                why = json.loads(found.group("why")) if found.group("why", ) and found.group("why").startswith('"') else (found.group("why") or "").strip("`")
                env_end = tail.find(")")
                env = dict(_ENV.findall(call.group("rest") + tail[:env_end])) if call.group(1) else {}
                origin = "compose-go tests" if "compose-go" in str(test) else "docker/cli tests" if "cli" in str(test) else "go tests"
                directory = into / f"{root.name}_{test.stem}_{index:03d}"
                directory.mkdir(parents=True, exist_ok=True)
                path = directory / "compose.yaml"
                path.write_text(text)
                if expected and origin == "compose-go tests":
                    # compose-go's tests load with SkipConsistencyCheck: its loader would check these.
                    expected, why = _consistent(_raw_model(path) or {})
                yield Case(path, origin, expected, why, env)


# --------------------------------------------------------------------------- the schema oracle


class SchemaOracle:
    def __init__(self, schema_path: Path) -> None:
        import jsonschema

        schema = json.loads(schema_path.read_text())
        self.validator = jsonschema.validators.validator_for(schema)(schema)

    def verdict(self, path: Path) -> tuple[bool, str]:
        documents = _documents(path)
        if documents is None:
            return False, ""
        for data in documents:
            errors = sorted(self.validator.iter_errors(_unique(data)), key=lambda e: len(e.absolute_path))
            if errors:
                return False, ".".join(str(p) for p in errors[0].absolute_path if not isinstance(p, int))
        model = _raw_model(path) or {}
        if not model or set(model) == {"version"}:
            return False, ""
        return _consistent(model)


def _documents(path: Path) -> list[dict[str, Any]] | None:
    """The file's YAML documents, read by ruamel (YAML 1.2, as go-yaml v3), not by the loader
    under test; None when it is no YAML, holds a key that is not a string (compose-go refuses
    both) or a document that is not a mapping."""
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    try:
        documents = [d for d in yaml.load_all(path.read_text(errors="replace")) if d is not None]
    except Exception:  # any YAML error: compose-go fails to parse it too
        return None
    if not documents or not all(isinstance(d, dict) and _string_keys(d) for d in documents):
        return None
    return documents


def _string_keys(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _string_keys(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_string_keys(v) for v in value)
    return True


def _raw_model(path: Path) -> dict[str, Any] | None:
    """The documents of a file, merged enough for the consistency rules."""
    documents = _documents(path)
    if documents is None:
        return None
    model: dict[str, Any] = {}
    for data in documents:
        for key, value in data.items():
            model[key] = {**model[key], **value} if isinstance(value, dict) and isinstance(model.get(key), dict) else value
    return model


def _unique(data: dict[str, Any]) -> dict[str, Any]:
    """compose-go makes a service's lists unique (later entries win) before it validates."""
    for service in (data.get("services") or {}).values() if isinstance(data.get("services"), dict) else ():
        if not isinstance(service, dict):
            continue
        for key, value in service.items():
            if isinstance(value, list):
                seen: dict[str, Any] = {}
                for item in value:
                    seen[item.split("=", 1)[0] if isinstance(item, str) and key in _BY_NAME else json.dumps(item, sort_keys=True, default=str)] = item
                service[key] = list(seen.values())
    return data


_BY_NAME = {"environment", "labels", "sysctls", "annotations", "cap_add", "cap_drop", "dns", "dns_opt", "dns_search", "links", "profiles", "tmpfs"}


def _consistent(model: dict[str, Any]) -> tuple[bool, str]:
    """compose-go's checkConsistency, where the schema cannot tell (raw, before normalisation)."""
    services = model.get("services") or {}
    if "include" in model or any(isinstance(s, dict) and "extends" in s for s in services.values()):
        return True, ""
    defined = {kind: set(model.get(kind) or {}) for kind in ("networks", "volumes", "secrets", "configs")}
    defined["networks"].add("default")
    for name, service in services.items():
        if not isinstance(service, dict):
            continue
        if not ({"image", "build", "provider"} & set(service)):
            return False, f"services.{name}"
        for kind in ("networks", "secrets", "configs"):
            value = service.get(kind) or []
            names = list(value) if isinstance(value, dict) else [v if isinstance(v, str) else v.get("source") for v in value]
            if any(n not in defined[kind] for n in names if isinstance(n, str)):
                return False, f"services.{name}.{kind}"
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) and ":" in volume else (volume.get("source") if isinstance(volume, dict) and volume.get("type") == "volume" else None)
            if source and not source.startswith((".", "/", "~", "$")) and not re.match(r"[A-Za-z]:", source) and source not in defined["volumes"]:
                return False, f"services.{name}.volumes"
        depends = service.get("depends_on") or []
        if any(d not in services or d == name for d in depends):
            return False, f"services.{name}.depends_on"
    cycle = _cycle(services)
    return (False, f"services.{cycle}.depends_on") if cycle else (True, "")


def _cycle(services: dict[str, Any]) -> str | None:
    """A service on a depends_on cycle (compose-go's graph.CheckCycle), or None."""
    edges = {name: [d for d in (s.get("depends_on") or []) if d in services] if isinstance(s, dict) else [] for name, s in services.items()}
    state: dict[str, int] = {}

    def visit(name: str) -> str | None:
        state[name] = 1
        for dependency in edges[name]:
            if state.get(dependency) == 1:
                return dependency
            if dependency not in state and (found := visit(dependency)):
                return found
        state[name] = 2
        return None

    for name in edges:
        if name not in state and (found := visit(name)):
            return found
    return None


# --------------------------------------------------------------------------- loading and judging


def run(case: Case) -> Outcome:
    try:
        load_stack(case.path, env=case.env, name="corpus")
    except StackFileError as exc:
        problems = [(p.path, p.message) for p in exc.problems]
        environmental = all(any(word in m for word in ENVIRONMENTAL) for _p, m in problems)
        return Outcome(case, "rejected-env" if environmental else "rejected", problems)
    except Exception as exc:  # a crash is what this benchmark is here to find
        return Outcome(case, "crashed", [("", f"{type(exc).__name__}: {exc}")])
    return Outcome(case, "accepted")


_KEY_PATH = re.compile(r"\b((?:services|networks|volumes|secrets|configs|include|name|version)(?:\.[\w.*\[\]-]+)?)")
_STOP = {"must", "should", "cannot", "defined", "service", "services", "invalid", "value", "error", "which", "with", "there", "found"}
#: The schema's words for what our messages say otherwise.
_SYNONYMS = {"additional property": "unknown key", "additional properties": "unknown key", "non-string key": "must be a string"}


def right_reason(outcome: Outcome) -> bool:
    expected = outcome.case.reason
    if not expected:
        return True  # nothing more to compare
    if outcome.case.source != "files":
        for theirs, ours in _SYNONYMS.items():
            if theirs in expected.lower() and any(ours in m for _p, m in outcome.problems):
                return True
    paths = [p.rstrip(".:") for p in _KEY_PATH.findall(expected)] if outcome.case.source != "files" else [expected]
    for wanted in paths:
        if any(ours == wanted or ours.startswith(wanted + ".") or ours.startswith(wanted + "[") or wanted.startswith(ours + ".") and ours.count(".") >= 1
               for ours, _m in outcome.problems):
            return True
    words = {w for w in re.findall(r"[a-z_]{5,}", expected.lower()) if w not in _STOP}
    text = " ".join(f"{p} {m}" for p, m in outcome.problems).lower()
    return bool(words) and any(w in text for w in words)


def reason_class(message: str) -> str:
    """A problem's message with its particulars blanked, to group like with like."""
    message = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", message)
    message = re.sub(r"/[\w./-]+", "/…", message)
    return re.sub(r"\d+", "N", message)[:110]


def report(outcomes: list[Outcome], show: int) -> None:
    verdicts = collections.Counter(o.verdict for o in outcomes)
    print(f"files: {len(outcomes)}  " + "  ".join(f"{k}: {verdicts[k]}" for k in ("accepted", "rejected", "rejected-env", "crashed")))
    for source in ("compose-go tests", "docker/cli tests", "files"):
        judged = [o for o in outcomes if o.case.source == source and o.case.expected is not None]
        if not judged:
            continue
        valid = [o for o in judged if o.case.expected]
        invalid = [o for o in judged if not o.case.expected]
        accepted = sum(o.verdict == "accepted" for o in valid)
        env_only = sum(o.verdict == "rejected-env" for o in valid)
        rejected = [o for o in invalid if o.verdict in ("rejected", "rejected-env")]
        right = sum(right_reason(o) for o in rejected)
        print(f"\n{source}: {len(judged)} with an expected verdict")
        print(f"  valid:   {len(valid):4d}  accepted {accepted} ({_pct(accepted, len(valid))}), "
              f"of those that need no variables {_pct(accepted, len(valid) - env_only)}; rejected for their environment only: {env_only}")
        print(f"  invalid: {len(invalid):4d}  rejected {len(rejected)} ({_pct(len(rejected), len(invalid))}), "
              f"for the right reason {right} ({_pct(right, len(invalid))})")
    reasons = collections.Counter(reason_class(m) for o in outcomes if o.verdict.startswith("rejected") for _p, m in o.problems[:1])
    print("\nfirst problem of each rejected file, grouped:")
    for reason, count in reasons.most_common(40):
        print(f"  {count:4d}  {reason}")
    crashed = [o for o in outcomes if o.verdict == "crashed"]
    for outcome in crashed:
        print(f"CRASH {outcome.case.path}: {outcome.problems[0][1]}")
    if show:
        print("\ndisagreements:")
        shown = 0
        for o in outcomes:
            if o.case.expected is None:
                continue
            wrong = (o.case.expected and o.verdict == "rejected") or (not o.case.expected and o.verdict == "accepted") or (
                not o.case.expected and o.verdict.startswith("rejected") and not right_reason(o))
            if wrong and shown < show:
                shown += 1
                ours = "; ".join(f"{p}: {m}" for p, m in o.problems[:2])[:300]
                print(f"- {o.case.path}\n    expected {'valid' if o.case.expected else 'invalid'} {o.case.reason!r}\n    ours: {o.verdict} {ours}")


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path)
    parser.add_argument("--go-tests", action="store_true", help="also the YAML inlined in Go loader tests")
    parser.add_argument("--schema", type=Path, help="the compose-spec JSON schema, as a partial oracle")
    parser.add_argument("--show", type=int, default=0, metavar="N", help="list N disagreements")
    args = parser.parse_args(argv)
    oracle = SchemaOracle(args.schema) if args.schema else None
    with tempfile.TemporaryDirectory(prefix="compose-corpus-") as scratch:
        cases = [Case(path, "files") for path in compose_files(args.dirs)]
        if args.go_tests:
            cases += list(go_test_cases(args.dirs, Path(scratch)))
        for case in cases:
            if case.source == "files" and oracle is not None:
                case.expected, case.reason = oracle.verdict(case.path)
        report([run(case) for case in cases], args.show)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
