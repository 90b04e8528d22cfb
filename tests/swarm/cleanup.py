"""Removing Swarm test clusters: one by name, or those whose owner process is gone."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.swarm.docker_cli import BASE_DIR, LABEL_CLUSTER, LABEL_OWNER, docker

CGROUP_ROOT = Path("/sys/fs/cgroup")


def remove_cluster(name: str) -> None:
    """Remove a cluster's node containers, network, host folder and leftover cgroups. Safe to
    call for a cluster that is half there or already gone."""
    label = f"label={LABEL_CLUSTER}={name}"
    containers = docker("ps", "--all", "--quiet", "--filter", label).split()
    if containers:
        docker("rm", "--force", "--volumes", *containers, timeout=300)
    for network in docker("network", "ls", "--quiet", "--filter", label).split():
        docker("network", "rm", network)
    shutil.rmtree(BASE_DIR / name, ignore_errors=True)
    _remove_cgroups(name)


def _remove_cgroups(cluster: str) -> None:
    """rmdir, deepest first, the cgroups the nodes' containers had under `/<cluster>` in every
    hierarchy; the processes died with their node, so the cgroups are empty."""
    for hierarchy in CGROUP_ROOT.glob("*"):
        top = hierarchy / cluster
        if not top.is_dir():
            continue
        for folder in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
            _rmdir(folder)
        _rmdir(top)


def _rmdir(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # still in use, or gone already: nothing of ours to force


def clusters() -> dict[str, str | None]:
    """Every harness cluster on the host's engine: name → owner pid (None: started by hand)."""
    found: dict[str, str | None] = {}
    template = f'{{{{ .Label "{LABEL_CLUSTER}" }}}} {{{{ .Label "{LABEL_OWNER}" }}}}'
    for kind in ("ps --all", "network ls"):
        for line in docker(*kind.split(), "--filter", f"label={LABEL_CLUSTER}", "--format", template).splitlines():
            name, _, owner = line.partition(" ")
            found[name] = owner.strip() or None
    return found


def cleanup_stale() -> list[str]:
    """Remove the clusters whose owning process is gone (a crashed or killed run); returns their
    names. Clusters of live processes and clusters started by hand are left alone."""
    stale = [name for name, owner in clusters().items() if owner is not None and not _alive(int(owner))]
    for name in stale:
        remove_cluster(name)
    return stale


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()
