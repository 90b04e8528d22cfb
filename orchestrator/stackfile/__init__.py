"""Stack files (compose file format 3.x / the compose-spec) -> the frozen StackSpec.

The pipeline, one module each: read YAML with positions (yamlread) -> interpolate each document
(interpolate) -> add included projects (include) and apply `extends` (extends) -> merge the
documents and files in order (merge), their list entries unique by key (unique); project drives
these steps -> read every key into the model (toplevel, service, deploy, mounts, with reader's
typed getters; spec_schema for the keys we ignore) -> cross-checks (validate).
Every problem of every file is collected before StackFileError is raised. Loading is pure: the
only I/O is reading the given files, the files they include or extend (sources), `.env` beside
the first file, env_files, and checking secret and config files (stackfile/files.py says which
files may be named). docs/stackfile.md says which keys warn, which fail, and which defaults apply.

`Limits` (stackfile/limits.py) bound the size of what is loaded and say whether dangerous options
(stackfile/dangerous.py) are warned about or refused; the daemon and `orchestrator config` both
build them from the settings.
"""

from __future__ import annotations

import os
from dataclasses import replace
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator import names
from orchestrator.model.spec import NetworkAttachment, NetworkSpec, ServiceSpec, StackSpec
from orchestrator.stackfile.dangerous import find_dangerous
from orchestrator.stackfile.files import MissingFile, NamedFileError, read_named_file
from orchestrator.stackfile.interpolate import parse_env_file
from orchestrator.stackfile.limits import Limits, over_limit
from orchestrator.stackfile.project import merged_model
from orchestrator.stackfile.problems import Problem, Problems, StackFileError
from orchestrator.stackfile.reader import Context, Section, type_name
from orchestrator.stackfile.normalized import stack_to_compose
from orchestrator.stackfile.render import dump, stack_to_data
from orchestrator.stackfile.service import read_service
from orchestrator.stackfile.toplevel import normalise_name, read_file_objects, read_networks, read_volumes
from orchestrator.stackfile.validate import check_stack, locate
from orchestrator.stackfile.sources import Sources
from orchestrator.stackfile.yamlread import YMap

__all__ = ["Limits", "Problem", "StackFileError", "dump", "load_stack", "load_stack_text", "stack_to_compose", "stack_to_data"]

_TOP_KEYS = ("version", "name", "services", "networks", "volumes", "secrets", "configs", "include")
_TOP_IGNORED = {"models": "AI models (Docker Model Runner) are not supported by this orchestrator; ignored"}


def load_stack(
    paths: str | Path | Sequence[str | Path],
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    limits: Limits = Limits(),
    deploying: bool = False,
) -> StackSpec:
    """Load one stack file, or several merged in order (`-c base.yml -c override.yml`)."""
    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not files:
        raise ValueError("load_stack needs at least one file")
    texts, problems = [], Problems()
    for file in files:
        try:
            texts.append((str(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            problems.error((str(file), 0), "", f"cannot read the file: {getattr(exc, 'strerror', None) or exc}")
    problems.raise_if_any()
    return load_stack_text(texts, files[0].expanduser().resolve().parent, env, name, limits, deploying)


def load_stack_text(
    texts: Sequence[tuple[str, str]],
    base_dir: Path,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    limits: Limits = Limits(),
    deploying: bool = False,
) -> StackSpec:
    """Load (filename, YAML text) pairs; relative paths and `.env` resolve against `base_dir`.

    `deploying`: also check what only a deploy needs (a secret's or config's file exists, its
    environment variable is set); without it those are warnings, as `docker compose config`
    loads a project whose secret files are generated later."""
    problems = Problems()
    base_dir = Path(base_dir)
    environment = _environment(base_dir, os.environ if env is None else env, problems, limits)
    if not texts:
        raise ValueError("load_stack_text needs at least one file")
    loading = Context(problems, base_dir, environment, "", limits, deploying=deploying)
    merged = merged_model(texts, environment, Sources(loading))
    if merged is None:
        problems.raise_if_any()  # cannot read the keys of what could not be parsed
        raise AssertionError("a file that cannot be parsed has a problem")
    stack = _assemble(merged, name, loading)
    problems.raise_if_any()
    return stack


def _environment(base_dir: Path, env: Mapping[str, str], problems: Problems, limits: Limits) -> dict[str, str]:
    """`.env` beside the first file, under the given environment (which wins, as in compose)."""
    dotenv = base_dir / ".env"
    values: dict[str, str] = {}
    try:
        text = read_named_file(dotenv, limits.max_file_size)
    except MissingFile:
        text = ""
    except NamedFileError as exc:
        problems.error((str(dotenv), 0), "", f"cannot read the file: {exc}")
        text = ""
    parsed = parse_env_file(text, str(dotenv), problems, env)
    values = {k: v for k, v in parsed.items() if v is not None}
    values.update(env)
    return values


def _assemble(tree: YMap, name: str | None, loading: Context) -> StackSpec:
    problems = loading.problems
    root = Section(tree, "", loading)
    stack_name = _stack_name(root, name)
    ctx = replace(loading, stack=stack_name)
    root = Section(tree, "", ctx)
    root.check_keys(_TOP_KEYS, _TOP_IGNORED)
    if not any(key != "version" for key in tree):
        root.error(None, "the stack file is empty: it defines no services, networks, volumes, secrets or configs")
    if "version" in tree and not isinstance(tree["version"], str):
        root.error("version", f'must be a string (write version: "{_plain(tree["version"])}"), not {type_name(tree["version"])}')
    services_section = root.section("services")
    services: dict[str, ServiceSpec] = {}
    for service_name in _service_names(services_section, ctx.limits):
        section = services_section.section(service_name)  # type: ignore[union-attr]
        if section is not None:
            services[service_name] = read_service(service_name, section)
    networks = read_networks(root.section("networks"), ctx)
    services = _join_default_network(services, networks, stack_name)
    stack = StackSpec(
        name=stack_name,
        services=services,
        networks=networks,
        volumes=read_volumes(root.section("volumes"), ctx),
        secrets=read_file_objects(root.section("secrets"), ctx),
        configs=read_file_objects(root.section("configs"), ctx),
    )
    check_stack(stack, tree, problems)
    for danger in find_dangerous(stack):
        ctx.dangerous(locate(tree, *danger.keys), danger.path, danger.what)
    return replace(stack, warnings=tuple(problems.warnings))


def _stack_name(root: Section, name: str | None) -> str:
    """The `name` argument, else top-level `name:` (a string), else the project directory."""
    given = root.raw("name")
    if given is not None and not isinstance(given, str):
        root.error("name", f"must be a string, not {type_name(given)}")
        given = None
    stack_name = normalise_name(name or given or root.ctx.base_dir.name)
    if not stack_name:
        root.error("name", "the stack name is empty after normalisation (use [a-z0-9_-])")
        return "stack"
    if not names.is_stack_name(stack_name):
        root.error("name", f"invalid stack name {stack_name!r}: use {names.STACK_RULE}")
    return stack_name


def _service_names(services: Section | None, limits: Limits) -> list[str]:
    """The services to read (`x-` names too: under `services:` they are services, as in
    compose-go); none when there are more than the limit (reading them all first would cost
    the time the limit is there to save)."""
    names = list(services.data if services else ())
    if services is not None and len(names) > limits.max_services:
        services.error(None, over_limit(len(names), limits.max_services, "services per stack", "max_services"))
        return []
    return names


def _plain(value: object) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _join_default_network(
    services: dict[str, ServiceSpec], networks: dict[str, NetworkSpec], stack: str
) -> dict[str, ServiceSpec]:
    """A service that names no network joins `default` (`<stack>_default`), as in compose; so
    does one that names `default` among others. The implicit network exists only when used."""
    result = {}
    for name, service in services.items():
        if not service.networks:
            service = replace(service, networks=(NetworkAttachment(network="default"),))
        if any(attachment.network == "default" for attachment in service.networks):
            networks.setdefault("default", NetworkSpec(name="default", engine_name=f"{stack}_default"))
        result[name] = service
    return result
