"""The daemon's image with this tree's package, for tests that run the daemon as a Swarm service.

The shared `orchestrator/daemon:latest` (scripts/setup) is built from whichever tree ran setup
last; a test of this tree's daemon needs this tree's code. So the package is copied over the
installed one in a thin image on top of it (a second or two: the dependencies are there already),
tagged by the code's hash, and removed by the test that made it.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from tests.swarm.docker_cli import ClusterError, docker

BASE_IMAGE = "orchestrator/daemon:latest"
PACKAGE = Path(__file__).parents[2] / "orchestrator"
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")


def base_image_present() -> bool:
    try:
        docker("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE)
    except ClusterError:
        return False
    return True


def build_tree_image() -> str:
    """Build (or find) the image; its tag."""
    digest = hashlib.sha256()
    for path in sorted(p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    tag = f"orchestrator-test/daemon-tree:{digest.hexdigest()[:12]}"
    installed = docker("run", "--rm", "--entrypoint", "python3", BASE_IMAGE, "-c",
                       "import orchestrator, os; print(os.path.dirname(orchestrator.__file__))")
    with tempfile.TemporaryDirectory(prefix="daemon-tree-") as context:
        shutil.copytree(PACKAGE, Path(context) / "orchestrator", ignore=_IGNORED)
        (Path(context) / "Dockerfile").write_text(
            f"FROM {BASE_IMAGE}\nRUN rm -rf {installed}\nCOPY orchestrator/ {installed}/\n")
        docker("build", "--quiet", "--tag", tag, context, timeout=300)
    return tag


def remove_image(tag: str) -> None:
    try:
        docker("image", "rm", tag)
    except ClusterError:
        pass  # in use by a container a parallel run left, or gone: nothing of ours to force
