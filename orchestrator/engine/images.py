"""Making a service's image present: use it, else pull it (with the docker CLI's registry
credentials), else build it from its `build:` context, else say why not (ImageUnavailable)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiodocker
import structlog

from orchestrator.engine.build_context import ContextLimits, ContextRefused, context_archive
from orchestrator.engine.calls import engine_errors, is_missing
from orchestrator.errors import EngineError, ImageUnavailable
from orchestrator.model.spec import BuildSpec

log = structlog.stdlib.get_logger()

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


async def ensure_image(
    docker: aiodocker.Docker, image: str, build: BuildSpec | None, *, pullable: bool,
    limits: ContextLimits = ContextLimits(),
) -> None:
    """`pullable` is False for a `build:`-only service: its derived name exists in no registry.
    `limits` bound a build context sent from a directory (engine/build_context.py)."""
    if await _present(docker, image):
        return
    reason = "no image and no build"
    if pullable:
        try:
            await _pull(docker, image)
            log.info("image_pulled", image=image)
            return
        except EngineError as exc:
            reason = exc.message
            log.warning("image_pull_failed", image=image, reason=reason)
    if build is None:
        raise ImageUnavailable(image, reason)
    try:
        await _build(docker, image, build, limits)
    except ContextRefused as exc:
        raise ImageUnavailable(image, f"build refused: {exc}") from exc
    except EngineError as exc:
        raise ImageUnavailable(image, f"build failed: {exc.message}") from exc
    log.info("image_built", image=image, context=build.context)


async def _present(docker: aiodocker.Docker, image: str) -> bool:
    try:
        with engine_errors():
            await docker.images.inspect(image)
    except EngineError as exc:
        if is_missing(exc):
            return False
        raise
    return True


async def _pull(docker: aiodocker.Docker, image: str) -> None:
    registry = registry_of(image)
    auth = registry_auth(registry, load_docker_config())
    reference = image
    if auth is not None and registry == DOCKER_HUB and not image.startswith(f"{DOCKER_HUB}/"):
        # aiodocker sends credentials only for a reference that names its registry.
        reference = f"{DOCKER_HUB}/{image if '/' in image else 'library/' + image}"
    with engine_errors():
        await docker.images.pull(reference, auth=auth)


async def _build(docker: aiodocker.Docker, image: str, build: BuildSpec, limits: ContextLimits) -> None:
    if build.target:
        raise EngineError(0, f"build target {build.target!r} is not supported by this engine client")
    args = {k: v for k, v in build.args.items() if v is not None}
    common: dict[str, Any] = {
        "tag": image,
        "path_dockerfile": build.dockerfile,
        "buildargs": args or None,
        "labels": dict(build.labels) or None,
        "rm": True,
        "forcerm": True,
    }
    if "://" in build.context:
        with engine_errors():
            await docker.images.build(remote=build.context, **common)
        return
    # Archived by a thread into a temporary file; the upload streams from it in 8 KiB reads.
    async with context_archive(Path(build.context), build.dockerfile, limits) as context:
        with engine_errors():
            await docker.images.build(fileobj=context, encoding="identity", **common)


# --------------------------------------------------------------------------- registry auth


def registry_of(image: str) -> str:
    """The registry host of an image reference, as the docker CLI reads it."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return DOCKER_HUB if first in _HUB_ALIASES else first
    return DOCKER_HUB


def load_docker_config() -> Mapping[str, Any]:
    directory = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    path = Path(directory) / "config.json"
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("docker_config_unreadable", path=str(path), error=str(exc))
        return {}
    return config if isinstance(config, dict) else {}


def registry_auth(registry: str, config: Mapping[str, Any]) -> dict[str, str] | None:
    """The `auths` entry for `registry` (keys may carry a scheme and a path, as the CLI writes
    them). Credential helpers (`credsStore`, `credHelpers`) are not consulted."""
    for key, entry in (config.get("auths") or {}).items():
        if _registry_key(key) == registry and isinstance(entry, dict):
            if entry.get("identitytoken"):
                return {"identitytoken": entry["identitytoken"]}
            if entry.get("auth"):
                return {"auth": entry["auth"]}
            if entry.get("username"):
                token = f"{entry['username']}:{entry.get('password', '')}".encode()
                return {"auth": base64.b64encode(token).decode()}
    return None


def _registry_key(key: str) -> str:
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return DOCKER_HUB if host in _HUB_ALIASES else host
