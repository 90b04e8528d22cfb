"""Deploy bodies that take the stack-file loader long, within every limit it checks: shared by
the tests and benchmarks/bench_hostile.py.

Under the loader's limits (nesting depth, YAML nodes with aliases expanded, services per stack,
the body size) the slowest input left is an alias bomb just under the node cap (~1.1M nodes in a
few hundred bytes, ~2 s and ~50 MB to load), and a JSON body can carry many of them, one file
each: each file is capped alone.
"""

from __future__ import annotations

import json


def alias_bomb(invalid: bool = True) -> str:
    """~1.1M YAML nodes with aliases expanded (10 + 10^2 + ... + 10^6), under the 2M cap; with
    `invalid`, refused at its end (a negative replica count), after all the work."""
    lines = ["x-a0: &a0 [" + ",".join(["x"] * 10) + "]"]
    lines += [f"x-a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]
    lines.append("services:\n  web:\n    image: busybox\n    deploy: {replicas: %d}" % (-1 if invalid else 1))
    return "\n".join(lines) + "\n"


def alias_bombs(files: int) -> bytes:
    """A JSON deploy body of `files` alias bombs: about `files` times 2 s of loading."""
    return json.dumps({"files": [{"name": f"f{i}.yml", "content": alias_bomb()} for i in range(files)]}).encode()
