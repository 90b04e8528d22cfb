"""One entry of `services:` -> ServiceSpec. Keys that compose knows but one engine (or this
daemon) cannot honour are warned about, as `docker stack deploy` prints "Ignoring unsupported
options"; keys compose does not know are errors."""

from __future__ import annotations

import json
import shlex
from typing import Any

from orchestrator.model.spec import BuildSpec, DependsOn, Healthcheck, LoggingSpec, RestartPolicy, ServiceSpec
from orchestrator.stackfile import values
from orchestrator.stackfile.deploy import read_deploy, replica_count, restart_fallback
from orchestrator.stackfile.mounts import read_file_refs, read_volumes, tmpfs_list
from orchestrator.stackfile.networking import read_extra_hosts, read_networks, read_ports
from orchestrator.stackfile.problems import Where, quote
from orchestrator.stackfile.process import read_environment, read_sysctls, read_ulimits
from orchestrator.stackfile.reader import Section, labels, resolve_path, sub_section
from orchestrator.stackfile.yamlread import YMap

_SUPPORTED = (
    "image", "build", "command", "entrypoint", "environment", "env_file", "labels", "ports",
    "networks", "volumes", "tmpfs", "secrets", "configs", "healthcheck", "depends_on",
    "stop_grace_period", "stop_signal", "hostname", "user", "working_dir", "init", "read_only",
    "cap_add", "cap_drop", "extra_hosts", "dns", "ulimits", "sysctls", "logging", "deploy",
    "restart", "scale", "provider",
)  # fmt: skip
_UNSUPPORTED = (
    "annotations", "attach", "blkio_config", "cgroup", "cgroup_parent", "container_name",
    "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime",
    "cpu_shares", "cpus", "cpuset", "credential_spec", "develop", "device_cgroup_rules", "devices",
    "domainname", "external_links", "expose", "gpus", "group_add", "ipc",
    "isolation", "label_file", "links", "mac_address", "mem_limit", "mem_reservation",
    "mem_swappiness", "memswap_limit", "models", "network_mode", "oom_kill_disable",
    "oom_score_adj", "pid", "pids_limit", "platform", "post_start", "pre_start", "pre_stop",
    "privileged", "profiles", "pull_policy", "pull_refresh_after", "runtime",
    "security_opt", "shm_size",
    "storage_opt", "use_api_socket", "userns_mode", "uts", "volumes_from",
)  # fmt: skip
_IGNORED = {key: "not supported by this orchestrator (as docker stack deploy); ignored" for key in _UNSUPPORTED}
#: Mapped on Swarm (swarm/service.py), as docker stack deploy does; ignored on one engine.
_SWARM_ONLY = ("dns_search", "dns_opt", "tty", "stdin_open")
#: Not in the compose-spec (docker-compose v2 format): an error that says what to write instead.
_FORBIDDEN = {"volume_driver": "volume_driver is not supported; use a top-level volume's driver"}
_BUILD_KEYS = ("context", "dockerfile", "args", "target", "labels")
_HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period", "start_interval", "disable")


def _provider(section: Section) -> dict[str, Any] | None:
    """compose's provider mapping as plain data; anything but a mapping is an error at its path."""
    provider = section.section("provider")
    return json.loads(json.dumps(provider.data)) if provider is not None else None


def read_service(name: str, section: Section) -> ServiceSpec:
    for key, reason in _FORBIDDEN.items():
        if key in section.data:
            section.error(key, reason)
    on_swarm = section.ctx.limits.backend == "swarm"
    ignored = _IGNORED if on_swarm else {**_IGNORED, **{key: "read only on Swarm (ORCHESTRATOR_BACKEND=swarm); ignored"
                                                         for key in _SWARM_ONLY}}
    known = (*_SUPPORTED, *_FORBIDDEN, "extends", *(_SWARM_ONLY if on_swarm else ()))
    section.check_keys(known, ignored)  # extends: applied before (stackfile/extends.py)
    empty_image, image_where = section.raw("image") == "", section.where("image")
    if empty_image:  # compose-go: an empty image is no image (`image: ${IMAGE}` unset); a build names it
        section.data = _without_empty_image(section.data)
    if "image" not in section and "build" not in section and "extends" not in section:  # extends: its problem says why
        if empty_image:
            section.error("image", "the image is empty (is the variable it names set?)", image_where)
        elif "provider" in section:
            section.deploy_only("provider", "a service run by a provider (a compose plugin), with no image, cannot run on this orchestrator")
        else:
            section.error(None, "a service needs an image (or a build)")
    elif "provider" in section:
        section.warn("provider", "a provider (a compose plugin) is not run by this orchestrator; ignored: the service runs its image")
    deploy = read_deploy(section.section("deploy"))
    fallback = restart_fallback(section)
    return ServiceSpec(
        name=name,
        image=section.checked("image", values.image_reference),
        provider=_provider(section),
        build=_build(section),
        command=_command(section, "command"),
        entrypoint=_command(section, "entrypoint"),
        environment=read_environment(section),
        labels=labels(section, "labels"),
        ports=read_ports(section),
        networks=read_networks(section),
        volumes=read_volumes(section),
        tmpfs=tmpfs_list(section),
        secrets=read_file_refs(section, "secrets"),
        configs=read_file_refs(section, "configs"),
        healthcheck=_healthcheck(section.section("healthcheck")),
        depends_on=_depends_on(section),
        stop_grace_period=section.duration("stop_grace_period", 10.0),
        stop_signal=section.checked("stop_signal", values.signal_name),
        hostname=section.checked("hostname", values.hostname),
        user=section.checked("user", values.plain),
        working_dir=section.checked("working_dir", _working_dir),
        init=section.flag("init"),
        read_only=section.flag("read_only", False),
        cap_add=section.str_list("cap_add", allow_string=False, check=values.capability),
        cap_drop=section.str_list("cap_drop", allow_string=False, check=values.capability),
        extra_hosts=read_extra_hosts(section),
        dns=section.str_list("dns", check=values.ip_address),
        ulimits=read_ulimits(section.section("ulimits")),
        sysctls=read_sysctls(section),
        logging=_logging(section.section("logging")),
        mode=deploy.mode,
        replicas=_replicas(section, deploy.replicas, deploy.mode),
        resources=deploy.resources,
        restart_policy=deploy.restart_policy or fallback or RestartPolicy(),
        update_config=deploy.update_config,
        rollback_config=deploy.rollback_config,
        deploy_labels=deploy.labels,
        endpoint_mode=deploy.endpoint_mode,  # type: ignore[arg-type]
        placement=deploy.placement,
        generic_resources=deploy.generic_resources,
        **(_swarm_only(section) if on_swarm else {}),
    )


def _swarm_only(section: Section) -> dict[str, Any]:
    return {
        "dns_search": section.str_list("dns_search", check=values.plain),
        "dns_options": section.str_list("dns_opt", check=values.plain),
        "tty": bool(section.flag("tty", False)),
        "stdin_open": bool(section.flag("stdin_open", False)),
    }


def _without_empty_image(service: YMap) -> YMap:
    out = YMap(service.where)
    for key, value in service.items():
        if key != "image":
            out.put(key, value, service.key_where[key], service.tags.get(key))
    return out


def _replicas(section: Section, replicas: int | None, mode: str) -> int:
    scale = replica_count(section, "scale")
    if scale is not None and replicas is not None and scale != replicas:
        section.error("scale", f"scale ({scale}) and deploy.replicas ({replicas}) disagree")
    if mode in ("global", "global-job"):
        return 1  # one engine = one node; on Swarm one task a node
    return replicas if replicas is not None else (scale if scale is not None else 1)


def _working_dir(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError(f"working_dir {quote(text)} must be an absolute path (the engine refuses a relative one)")
    return values.plain(text, "working_dir")


def _command(section: Section, key: str) -> tuple[str, ...] | None:
    value = section.raw(key)
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as exc:
            section.error(key, f"cannot split {value!r} into words: {exc}")
            return None
    return section.str_list(key, allow_string=False)


def _build(section: Section) -> BuildSpec | None:
    value = section.raw("build")
    if value is None:
        return None
    if isinstance(value, str):
        return BuildSpec(context=_context(value, section, section.where("build")))
    build = section.section("build")
    if build is None:
        return None
    build.check_keys(_BUILD_KEYS, {key: "build option not supported; ignored" for key in _BUILD_IGNORED})
    return BuildSpec(
        context=_context(build.text("context", "."), section, build.where("context")),
        dockerfile=build.text("dockerfile"),
        args=build.mapping("args"),
        target=build.text("target"),
        labels=labels(build, "labels"),
    )


_BUILD_IGNORED = (
    "additional_contexts", "cache_from", "cache_to", "dockerfile_inline", "entitlements",
    "extra_hosts", "isolation", "network", "no_cache", "no_cache_filter", "platforms",
    "privileged", "provenance", "pull", "sbom", "secrets", "shm_size", "ssh", "tags", "ulimits",
)  # fmt: skip


def _context(context: str, section: Section, where: Where) -> str:
    if "://" in context or context.startswith(("git@", "github.com/")):
        return context
    return resolve_path(context, section.ctx.base_for(where))


def _healthcheck(section: Section | None) -> Healthcheck | None:
    if section is None:
        return None
    section.check_keys(_HEALTH_KEYS)
    disable = section.flag("disable", False)
    test_value = section.raw("test")
    if disable:
        if test_value not in (None, []):
            section.error("disable", "test and disable cannot be set at the same time")
        return Healthcheck(test=("NONE",))
    test: tuple[str, ...] | None = None
    if isinstance(test_value, str):
        test = ("CMD-SHELL", test_value)
    elif test_value is not None:
        test = section.str_list("test", allow_string=False)
        if not test or test[0] not in ("NONE", "CMD", "CMD-SHELL"):
            section.error("test", "a test list must start with NONE, CMD or CMD-SHELL")
    return Healthcheck(
        test=test,
        interval=_health_duration(section, "interval"),
        timeout=_health_duration(section, "timeout"),
        retries=section.integer("retries"),
        start_period=_health_duration(section, "start_period"),
        start_interval=_health_duration(section, "start_interval"),
    )


def _health_duration(section: Section, key: str) -> float | None:
    """The engine refuses a healthcheck time under 1ms (0 means the image's or its default)."""
    seconds: float | None = section.duration(key)
    if seconds is not None and 0 < seconds < 0.001:
        section.error(key, f"must be 0 or at least 1ms, not {seconds}s (the engine refuses less)")
        return None
    return seconds


def _depends_on(section: Section) -> tuple[DependsOn, ...]:
    value = section.raw("depends_on")
    if not isinstance(value, YMap):
        return tuple(DependsOn(service=name) for name in section.str_list("depends_on", allow_string=False))
    result = []
    for name, options in value.items():
        entry = sub_section(options, f"{section.key_path('depends_on')}.{name}", value.key_where[name], section.ctx)
        if entry is None:
            continue
        entry.check_keys(("condition",), {"restart": "not supported; ignored", "required": "not supported; ignored"})
        conditions = ("service_started", "service_healthy", "service_completed_successfully")
        result.append(DependsOn(service=name, condition=entry.choice("condition", conditions, "service_started")))
    return tuple(result)


def _logging(section: Section | None) -> LoggingSpec | None:
    if section is None:
        return None
    section.check_keys(("driver", "options"))
    return LoggingSpec(driver=section.checked("driver", values.plain), options=labels(section, "options"))
