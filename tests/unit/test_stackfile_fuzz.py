"""Random damage to valid files: loading either works or raises StackFileError, never anything
else (a malformed file never produces a traceback)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from orchestrator.stackfile import StackFileError, load_stack_text

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "stacks" / "getting-started.yml", *sorted((Path(__file__).parent / "fixtures").glob("*.yml"))]
FRAGMENTS = [":", "- ", "{", "}", "[", "]", "&a ", "*a", "<<: *a", "!reset ", "!override ", "$", "${", "${X:?e}", "'", '"', "\t",
             "\n  ", "\n    x: 1", "-1", "0x", "~", "null", "yes", "1e9", "99999", "/", "::", "0440", "1m3", "!!int ", "\x00", "\ufeff",
             # hostile values (issue 12): deep nesting, huge and non-finite numbers, NUL, paths
             "[" * 300, "{a: " * 100, ".nan", "-.inf", "1e308", "9" * 5000, "0x" + "f" * 40, '"\\0"', "/proc/self/environ",
             "../../etc", "/dev/zero", "${A:-" * 50, "on-failure:\u00b2", "\n    cap_add: [ALL]", "\n    volumes: ['/:/host']"]


def _mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        position = rng.randrange(len(text) + 1)
        if choice < 0.2:
            text = text[:position]  # truncation
        elif choice < 0.6:
            text = text[:position] + rng.choice(FRAGMENTS) + text[position:]
        elif choice < 0.8:
            end = min(len(text), position + rng.randint(1, 20))
            text = text[:position] + text[end:]
        else:
            lines = text.splitlines()
            if lines:
                index = rng.randrange(len(lines))
                lines.insert(rng.randrange(len(lines) + 1), lines[index])
            text = "\n".join(lines)
    return text


@pytest.mark.parametrize("seed", range(12))
def test_mutations_only_raise_stack_file_errors(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for source in SOURCES:
        original = source.read_text()
        for _ in range(40):
            text = _mutate(original, rng)
            try:
                load_stack_text([("fuzz.yml", text)], source.parent, env={}, name="fuzz")
            except StackFileError as exc:
                assert exc.problems and str(exc)
