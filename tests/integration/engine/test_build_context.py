"""`build:` contexts sent to the real engine: what .dockerignore excludes never reaches the image,
the context is the one docker's own CLI sends, and refused contexts say why."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import aiodocker
import pytest

from orchestrator.engine import Engine
from orchestrator.engine.build_context import ContextLimits
from orchestrator.errors import ImageUnavailable
from orchestrator.labels import LABEL_STACK
from orchestrator.model.spec import BuildSpec, ServiceSpec
from tests.integration.conftest import BUSYBOX

pytestmark = pytest.mark.integration

DOCKERIGNORE = """\
# everything but what the app needs
*.bin
docs
!docs/keep.txt
build
!build/keep
**/*.log
!logs/keep.log
**foo
Dockerfile
"""
FILES = ["README.md", "docs/a.md", "docs/keep.txt", "docs/sub/b.md", "build/out.o", "build/keep",
         "logs/x.log", "logs/keep.log", "src/deep/x.log", "src/main.go", "xfoo", "Main.BIN"]


def make_context(root: Path) -> None:
    (root / "Dockerfile").write_text(f"FROM {BUSYBOX}\nCOPY . /ctx\n")
    (root / ".dockerignore").write_text(DOCKERIGNORE)
    for name in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    (root / "big.bin").write_bytes(b"\0" * (64 << 20))  # ignored: must not travel


async def files_in(docker: aiodocker.Docker, image: str, stack: str) -> list[str]:
    container = await docker.containers.run({
        "Image": image, "Cmd": ["find", "/ctx"], "Labels": {LABEL_STACK: stack}})
    try:
        await container.wait()
        return sorted(line.strip() for line in await container.log(stdout=True) if line.strip())
    finally:
        await container.delete(force=True)


async def remove_images(docker: aiodocker.Docker, *images: str) -> None:
    for image in images:
        try:
            await docker.images.delete(image, force=True)
        except aiodocker.DockerError as exc:
            if exc.status != 404:
                raise


async def test_the_context_is_what_dockers_cli_sends(
    engine: Engine, docker: aiodocker.Docker, stack_name: str, tmp_path: Path
) -> None:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is needed to compare with")
    make_context(tmp_path)
    ours, theirs = f"{stack_name}_app", f"{stack_name}_cli"
    try:
        await engine.ensure_image(ServiceSpec(name="app", build=BuildSpec(context=str(tmp_path))), stack_name)
        cli = await asyncio.create_subprocess_exec(
            "docker", "build", "-q", "-t", theirs, str(tmp_path),
            env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, errors = await cli.communicate()
        assert cli.returncode == 0, errors.decode()
        sent = await files_in(docker, ours, stack_name)
        assert sent == await files_in(docker, theirs, stack_name)
        assert "/ctx/big.bin" not in sent and "/ctx/docs/keep.txt" in sent
    finally:
        await remove_images(docker, ours, theirs)


async def test_a_refused_context_makes_the_image_unavailable_with_the_reason(
    docker: aiodocker.Docker, stack_name: str, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {BUSYBOX}\n")
    (tmp_path / "data").write_bytes(b"\0" * 100_000)
    engine = await Engine.connect(build_limits=ContextLimits(max_bytes=50_000))
    try:
        for context, reason in ((tmp_path, "max_build_context_bytes"), (Path("/"), "system directory")):
            service = ServiceSpec(name="app", build=BuildSpec(context=str(context)))
            with pytest.raises(ImageUnavailable, match=reason) as caught:
                await engine.ensure_image(service, stack_name)
            assert caught.value.reason.startswith("build refused: build context")
    finally:
        await engine.close()
