"""A Docker Swarm of N nodes on this machine, for tests and benchmarks, without putting the
host's engine into swarm mode.

Each node is a container of `orchestrator/swarm-node` (Debian + docker.io, built by
scripts/setup) running a dockerd of its own, on a user network of the cluster's own. The run
flags are the ones that work here (../shared/ENVIRONMENT.md): all capabilities but SYS_RESOURCE,
no seccomp or AppArmor profile, the host's cgroup tree, tmpfs on /run; `--privileged` fails on
this kernel. Each node keeps /var/lib/docker on a tmpfs of its own (at most DATA_SIZE), where
dockerd can use overlay2: on the container's own file system only vfs works (overlay2 cannot
stack on the host's overlay2), and vfs copies every image layer and every container's root file
system in full (1.1 GB a node for the demo app's image, 54 s to remove 3 such nodes; on tmpfs with
overlay2: 0.3 GB and 2 s). dockerd listens on a unix socket in a host folder bind-mounted into
the node too, so the host reaches each node's engine as `Node.docker_host`
(`unix:///…/docker.sock`) with the docker CLI or aiodocker. The first node runs `swarm init` advertising its container address; the others join
as managers (one at a time: Raft takes one membership change at a time) or workers. Images
reach the nodes by `docker save` on the host and `docker load` into each node, only those asked
for (no registry answers here).

Everything carries the label `orchestrator.swarm.cluster=<name>`, and the host folder is
`/tmp/orchestrator-swarm/<name>`. A cluster started for a process (tests, benchmarks) also
carries `orchestrator.swarm.owner=<pid>`: `cleanup_stale()` (tests/swarm/cleanup.py) removes the
clusters whose owner is gone, i.e. whatever a killed run left behind. `scripts/swarm up` starts
one without an owner, which stays until `scripts/swarm down`. Each node's dockerd puts its
containers' cgroups under a parent of the cluster's own, so removing a cluster also removes the
cgroups its nodes left in the host's (shared, cgroup v1) tree when they were killed.

The harness is synchronous (it drives the docker CLI): pytest's session fixtures and the
benchmarks call it directly, async code through `asyncio.to_thread`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tests.swarm.cleanup import remove_cluster
from tests.swarm.docker_cli import (BASE_DIR, LABEL_CLUSTER, LABEL_OWNER, LABEL_ROLE, ClusterError, docker,
                                     host_environment)

NODE_IMAGE = "orchestrator/swarm-node:bookworm"
#: Where the node's dockerd listens for the host (a bind mount of the node's host folder).
SOCKET_MOUNT = "/orchestrator-swarm"
#: The bound of each node's in-memory /var/lib/docker.
DATA_SIZE = "4g"

NODE_RUN_FLAGS = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/var/run",
    # The node's images and containers live in memory, bounded: see the module docstring.
    "--tmpfs", f"/var/lib/docker:exec,size={DATA_SIZE}",
    # tini as PID 1 reaps the containerd shims dockerd leaves behind.
    "--init",
)

Role = Literal["manager", "worker"]


@dataclass(frozen=True, slots=True)
class Node:
    #: Container name, hostname and Swarm node hostname.
    name: str
    role: Role
    #: The node's address on the cluster network: Swarm advertises it, host-mode ports answer on it.
    address: str
    socket: Path

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"


def node_image_present() -> bool:
    try:
        docker("image", "inspect", "--format", "{{.Id}}", NODE_IMAGE)
    except ClusterError:
        return False
    return True


class Cluster:
    """A running Swarm: `Cluster.start(...)`, then `load_images`, `docker(...)`, `remove()`."""

    def __init__(self, name: str, nodes: Sequence[Node]) -> None:
        self.name = name
        self.nodes = tuple(nodes)

    @property
    def manager(self) -> Node:
        """The first node: it ran `swarm init` and is a manager for the cluster's whole life."""
        return self.nodes[0]

    @property
    def workers(self) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if node.role == "worker")

    @classmethod
    def start(cls, workers: int = 0, managers: int = 1, *, owned: bool = True, ready_timeout: float = 90) -> Cluster:
        """Start `managers` (at least 1) + `workers` nodes and form the Swarm. `owned`: the
        cluster belongs to this process (cleanup_stale removes it once the process is gone)."""
        if managers < 1 or workers < 0:
            raise ValueError(f"a Swarm needs at least one manager, not {managers} managers and {workers} workers")
        name = f"oswarm-{secrets.token_hex(3)}"
        labels = {LABEL_CLUSTER: name, **({LABEL_OWNER: str(os.getpid())} if owned else {})}
        roles: list[Role] = ["manager"] * managers + ["worker"] * workers
        try:
            docker("network", "create", *_label_args(labels), name)
            nodes = [_run_node(name, f"{name}-{role[0]}{index}", role, labels)
                     for index, role in enumerate(roles, start=1)]
            cluster = cls(name, nodes)
            for node in nodes:
                _wait_for_engine(node, ready_timeout)
            cluster._form_swarm()
            cluster.wait_ready(ready_timeout)
        except BaseException:
            remove_cluster(name)
            raise
        return cluster

    @classmethod
    def find(cls, name: str) -> Cluster:
        """A cluster that is already running (started by `scripts/swarm up`, or by another process)."""
        template = f'{{{{ .Name }}}} {{{{ index .Config.Labels "{LABEL_ROLE}" }}}} ' \
                   f'{{{{ (index .NetworkSettings.Networks "{name}").IPAddress }}}}'
        ids = docker("ps", "--quiet", "--filter", f"label={LABEL_CLUSTER}={name}").split()
        if not ids:
            raise ClusterError(f"no running Swarm test cluster named {name!r}")
        nodes = []
        for line in docker("inspect", "--format", template, *ids).splitlines():
            node_name, role, address = line.lstrip("/").split()
            nodes.append(Node(node_name, role, address, BASE_DIR / name / node_name / "docker.sock"))  # type: ignore[arg-type]
        # Node names end in their index; the first is the manager that ran `swarm init`.
        return cls(name, sorted(nodes, key=lambda node: int(node.name.rsplit("-", 1)[1][1:])))

    def _form_swarm(self) -> None:
        first = self.manager
        docker("swarm", "init", "--advertise-addr", first.address, host=first.docker_host)
        tokens = {role: docker("swarm", "join-token", "-q", role, host=first.docker_host)
                  for role in ("manager", "worker")}

        def join(node: Node) -> None:
            docker("swarm", "join", "--advertise-addr", node.address, "--token", tokens[node.role],
                   f"{first.address}:2377", host=node.docker_host)

        for node in self.nodes[1:]:
            if node.role == "manager":
                join(node)
        with ThreadPoolExecutor() as pool:
            list(pool.map(join, self.workers))

    def node_states(self) -> dict[str, tuple[str, str]]:
        """Hostname → (status, availability) as `docker node ls` on the manager shows them. A node
        that has just joined may not have reported its hostname yet: it is left out."""
        lines = self.docker("node", "ls", "--format", "{{.Hostname}}\t{{.Status}}\t{{.Availability}}")
        rows = (line.split("\t") for line in lines.splitlines())
        return {name: (status, availability) for name, status, availability in rows if name}

    def wait_ready(self, timeout: float = 90) -> None:
        """Until `docker node ls` shows every node Ready."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.node_states()
            if all(states.get(node.name, ("", ""))[0] == "Ready" for node in self.nodes):
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"Swarm {self.name}: nodes not ready after {timeout:.0f} s: {states}")
            time.sleep(0.2)

    def docker(self, *args: str, node: Node | None = None, timeout: float = 120) -> str:
        """The docker CLI against a node's engine (default: the first manager)."""
        return docker(*args, host=(node or self.manager).docker_host, timeout=timeout)

    def load_images(self, images: Iterable[str]) -> None:
        """Copy host images into every node that lacks them: one `docker save`, then `docker
        load` into the nodes side by side. An image a node has with the same id is not copied."""
        wanted = {image: docker("image", "inspect", "--format", "{{.Id}}", image) for image in images}
        missing = {node.name: [image for image, image_id in wanted.items() if _image_id(node, image) != image_id]
                   for node in self.nodes}
        needed = sorted({image for images_of_node in missing.values() for image in images_of_node})
        if not needed:
            return
        archive = BASE_DIR / self.name / "images.tar"
        try:
            docker("save", "--output", str(archive), *needed, timeout=600)
            with ThreadPoolExecutor() as pool:
                list(pool.map(lambda node: docker("load", "--input", str(archive), host=node.docker_host, timeout=600),
                              [node for node in self.nodes if missing[node.name]]))
        finally:
            archive.unlink(missing_ok=True)

    def remove(self) -> None:
        remove_cluster(self.name)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _label_args(labels: dict[str, str]) -> list[str]:
    return [arg for key, value in labels.items() for arg in ("--label", f"{key}={value}")]


def _run_node(cluster: str, name: str, role: Role, labels: dict[str, str]) -> Node:
    folder = BASE_DIR / cluster / name
    folder.mkdir(parents=True, exist_ok=True)
    docker("run", "--detach", "--name", name, "--hostname", name, "--network", cluster,
           *_label_args({**labels, LABEL_ROLE: role}), *NODE_RUN_FLAGS,
           "-v", f"{folder}:{SOCKET_MOUNT}", NODE_IMAGE,
           "dockerd", "--storage-driver", "overlay2", "--cgroup-parent", f"/{cluster}/{name}",
           "-H", "unix:///var/run/docker.sock", "-H", f"unix://{SOCKET_MOUNT}/docker.sock")
    address = docker("inspect", "--format", f'{{{{ (index .NetworkSettings.Networks "{cluster}").IPAddress }}}}', name)
    return Node(name=name, role=role, address=address, socket=folder / "docker.sock")


def _wait_for_engine(node: Node, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            docker("version", "--format", "{{.Server.Version}}", host=node.docker_host, timeout=10)
            return
        except ClusterError:
            if time.monotonic() > deadline:
                log = subprocess.run(["docker", "logs", "--tail", "20", node.name], capture_output=True, check=False,
                                     env=host_environment())
                raise ClusterError(f"the engine of node {node.name} did not answer within {timeout:.0f} s; its log:\n"
                                   + log.stderr.decode(errors="replace")) from None
            time.sleep(0.2)


def _image_id(node: Node, image: str) -> str | None:
    try:
        return docker("image", "inspect", "--format", "{{.Id}}", image, host=node.docker_host)
    except ClusterError:
        return None
