"""One entry of `services:` -> ServiceSpec. Keys that compose knows but one engine (or this
daemon) cannot honour are warned about, as `docker stack deploy` prints "Ignoring unsupported
options"; keys compose does not know are errors."""

from __future__ import annotations

import shlex
from pathlib import Path

from orchestrator.model import (
    BuildSpec,
    DependsOn,
    Healthcheck,
    LoggingSpec,
    RestartPolicy,
    ServiceSpec,
    Ulimit,
)
from orchestrator.stackfile.deploy import read_deploy, restart_fallback
from orchestrator.stackfile.interpolate import parse_env_file
from orchestrator.stackfile.mounts import read_file_refs, read_volumes, tmpfs_list
from orchestrator.stackfile.networking import read_extra_hosts, read_networks, read_ports
from orchestrator.stackfile.reader import Section, resolve_path, sub_section, type_name
from orchestrator.stackfile.yamlread import YMap

_SUPPORTED = (
    "image", "build", "command", "entrypoint", "environment", "env_file", "labels", "ports",
    "networks", "volumes", "tmpfs", "secrets", "configs", "healthcheck", "depends_on",
    "stop_grace_period", "stop_signal", "hostname", "user", "working_dir", "init", "read_only",
    "cap_add", "cap_drop", "extra_hosts", "dns", "ulimits", "sysctls", "logging", "deploy",
    "restart", "scale",
)  # fmt: skip
_UNSUPPORTED = (
    "annotations", "attach", "blkio_config", "cgroup", "cgroup_parent", "container_name",
    "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime",
    "cpu_shares", "cpus", "cpuset", "credential_spec", "develop", "device_cgroup_rules", "devices",
    "dns_opt", "dns_search", "domainname", "external_links", "expose", "gpus", "group_add", "ipc",
    "isolation", "label_file", "links", "mac_address", "mem_limit", "mem_reservation",
    "mem_swappiness", "memswap_limit", "models", "network_mode", "oom_kill_disable",
    "oom_score_adj", "pid", "pids_limit", "platform", "post_start", "pre_stop", "privileged",
    "profiles", "provider", "pull_policy", "runtime", "security_opt", "shm_size", "stdin_open",
    "storage_opt", "tty", "use_api_socket", "userns_mode", "uts", "volumes_from",
)  # fmt: skip
_IGNORED = {key: "not supported by this orchestrator (as docker stack deploy); ignored" for key in _UNSUPPORTED}
_FORBIDDEN = {"extends": "extends is not supported in a stack file", "volume_driver": "volume_driver is not supported; use a top-level volume's driver"}
_BUILD_KEYS = ("context", "dockerfile", "args", "target", "labels")
_HEALTH_KEYS = ("test", "interval", "timeout", "retries", "start_period", "start_interval", "disable")


def read_service(name: str, section: Section) -> ServiceSpec:
    for key, reason in _FORBIDDEN.items():
        if key in section.data:
            section.error(key, reason)
    section.check_keys((*_SUPPORTED, *_FORBIDDEN), _IGNORED)
    if "image" not in section and "build" not in section:
        section.error(None, "a service needs an image (or a build)")
    deploy = read_deploy(section.section("deploy"))
    fallback = restart_fallback(section)
    return ServiceSpec(
        name=name,
        image=section.str("image"),
        build=_build(section),
        command=_command(section, "command"),
        entrypoint=_command(section, "entrypoint"),
        environment=_environment(section),
        labels={k: v or "" for k, v in section.mapping("labels").items()},
        ports=read_ports(section),
        networks=read_networks(section),
        volumes=read_volumes(section),
        tmpfs=tmpfs_list(section),
        secrets=read_file_refs(section, "secrets"),
        configs=read_file_refs(section, "configs"),
        healthcheck=_healthcheck(section.section("healthcheck")),
        depends_on=_depends_on(section),
        stop_grace_period=section.duration("stop_grace_period", 10.0),
        stop_signal=section.str("stop_signal"),
        hostname=section.str("hostname"),
        user=section.str("user"),
        working_dir=section.str("working_dir"),
        init=section.bool("init"),
        read_only=section.bool("read_only", False),
        cap_add=section.str_list("cap_add", allow_string=False),
        cap_drop=section.str_list("cap_drop", allow_string=False),
        extra_hosts=read_extra_hosts(section),
        dns=section.str_list("dns"),
        ulimits=_ulimits(section.section("ulimits")),
        sysctls={k: v or "" for k, v in section.mapping("sysctls").items()},
        logging=_logging(section.section("logging")),
        mode=deploy.mode,
        replicas=_replicas(section, deploy.replicas, deploy.mode),
        resources=deploy.resources,
        restart_policy=deploy.restart_policy or fallback or RestartPolicy(),
        update_config=deploy.update_config,
        rollback_config=deploy.rollback_config,
        deploy_labels=deploy.labels,
        endpoint_mode=deploy.endpoint_mode,  # type: ignore[arg-type]
    )


def _replicas(section: Section, replicas: int | None, mode: str) -> int:
    scale = section.int("scale", None)
    if scale is not None and replicas is not None and scale != replicas:
        section.error("scale", f"scale ({scale}) and deploy.replicas ({replicas}) disagree")
    if mode == "global":
        return 1  # one engine = one node
    return replicas if replicas is not None else (scale if scale is not None else 1)


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


def _environment(section: Section) -> dict[str, str | None]:
    """env_file values first (in order), then `environment:` wins. A name without a value takes
    it from the loading environment, as compose does, else stays None."""
    merged: dict[str, str | None] = {}
    for item, path, where in section.seq("env_file", allow_string=True):
        file, required = item, True
        if isinstance(item, YMap):
            entry = Section(item, path, section.ctx, where)
            entry.check_keys(("path", "required", "format"))
            file, required = entry.str("path"), entry.bool("required", True)
        if not isinstance(file, str) or not file:
            section.ctx.problems.error(where, path, f"must be a file path, not {type_name(file)}")
            continue
        full = Path(resolve_path(file, section.ctx.base_dir))
        try:
            text = full.read_text(encoding="utf-8")
        except OSError as exc:
            if required:
                section.ctx.problems.error(where, path, f"cannot read env file {full}: {exc.strerror or exc}")
            continue
        merged.update(parse_env_file(text, str(full), section.ctx.problems, section.ctx.env))
    merged.update(section.mapping("environment"))
    return {k: section.ctx.env.get(k) if v is None else v for k, v in merged.items()}


def _build(section: Section) -> BuildSpec | None:
    value = section.raw("build")
    if value is None:
        return None
    if isinstance(value, str):
        return BuildSpec(context=_context(value, section))
    build = section.section("build")
    if build is None:
        return None
    build.check_keys(_BUILD_KEYS, {key: "build option not supported; ignored" for key in _BUILD_IGNORED})
    return BuildSpec(
        context=_context(build.str("context", "."), section),
        dockerfile=build.str("dockerfile"),
        args=build.mapping("args"),
        target=build.str("target"),
        labels={k: v or "" for k, v in build.mapping("labels").items()},
    )


_BUILD_IGNORED = (
    "additional_contexts", "cache_from", "cache_to", "dockerfile_inline", "entitlements",
    "extra_hosts", "isolation", "network", "no_cache", "platforms", "privileged", "pull",
    "secrets", "shm_size", "ssh", "tags", "ulimits",
)  # fmt: skip


def _context(context: str, section: Section) -> str:
    if "://" in context or context.startswith("git@"):
        return context
    return resolve_path(context, section.ctx.base_dir)


def _healthcheck(section: Section | None) -> Healthcheck | None:
    if section is None:
        return None
    section.check_keys(_HEALTH_KEYS)
    disable = section.bool("disable", False)
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
        interval=section.duration("interval"),
        timeout=section.duration("timeout"),
        retries=section.int("retries"),
        start_period=section.duration("start_period"),
        start_interval=section.duration("start_interval"),
    )


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


def _ulimits(section: Section | None) -> tuple[Ulimit, ...]:
    if section is None:
        return ()
    limits = []
    for name, value in section.items():
        if isinstance(value, YMap):
            entry = Section(value, section.key_path(name), section.ctx)
            entry.check_keys(("soft", "hard"))
            soft, hard = entry.int("soft", None, minimum=-1), entry.int("hard", None, minimum=-1)
            if soft is None or hard is None:
                entry.error(None, "needs both soft and hard")
                continue
            if soft > hard >= 0:
                entry.error("soft", f"soft limit {soft} is above the hard limit {hard}")
            limits.append(Ulimit(name, soft, hard))
        else:
            single = section.int(name, None, minimum=-1)
            if single is not None:
                limits.append(Ulimit(name, single, single))
    return tuple(limits)


def _logging(section: Section | None) -> LoggingSpec | None:
    if section is None:
        return None
    section.check_keys(("driver", "options"))
    options = section.mapping("options")
    return LoggingSpec(driver=section.str("driver"), options={k: v or "" for k, v in options.items()})
