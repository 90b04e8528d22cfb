"""How a service is reached and what it reaches: ports (short and long syntax), network
attachments (list or map with aliases and addresses), extra_hosts."""

from __future__ import annotations

from orchestrator.model.spec import NetworkAttachment, PortSpec
from orchestrator.stackfile import values
from orchestrator.stackfile.reader import Section, sub_section, to_str, type_name
from orchestrator.stackfile.shortsyntax import host_range_note, parse_port, parse_port_range, range_note
from orchestrator.stackfile.yamlread import YMap, YSeq


def read_ports(section: Section) -> tuple[PortSpec, ...]:
    ports: list[PortSpec] = []
    for item, path, where in section.seq("ports"):
        if isinstance(item, YMap):
            port = _long_port(Section(item, path, section.ctx, where))
            ports.extend(port)
            continue
        try:
            ports.extend(parse_port(item))
            if note := host_range_note(item):
                section.ctx.problems.warn(path, note)
        except ValueError as exc:
            section.ctx.problems.error(where, path, str(exc))
    return tuple(ports)


def _long_port(entry: Section) -> list[PortSpec]:
    entry.check_keys(
        ("target", "published", "host_ip", "protocol", "mode"),
        {"app_protocol": "app_protocol is informational; ignored", "name": "port names are informational; ignored"},
    )
    target = entry.integer("target", None, minimum=1, maximum=65535)
    if target is None:
        if "target" not in entry:
            entry.error(None, "a port needs a target")
        return []
    published: int | None = None
    if "published" in entry:
        try:
            start, end = parse_port_range(to_str(entry.raw("published")))
        except ValueError as exc:
            entry.error("published", str(exc))
            return []
        if start != end:
            entry.warn("published", range_note(to_str(entry.raw("published"))))
        published = start
    return [
        PortSpec(
            target=target,
            published=published,
            protocol=entry.choice("protocol", ("tcp", "udp", "sctp"), "tcp"),
            mode=entry.choice("mode", ("ingress", "host"), "ingress"),
            host_ip=entry.checked("host_ip", values.ip_address),
        )
    ]


def read_networks(section: Section) -> tuple[NetworkAttachment, ...]:
    value = section.raw("networks")
    if value is None:
        return ()
    if not isinstance(value, YMap):
        return tuple(NetworkAttachment(network=name) for name in section.str_list("networks", allow_string=False))
    attachments = []
    for name, options in value.items():
        path = f"{section.key_path('networks')}.{name}"
        entry = None if options is None else sub_section(options, path, value.key_where[name], section.ctx)
        if entry is None:
            attachments.append(NetworkAttachment(network=name))
            continue
        entry.check_keys(
            ("aliases", "ipv4_address", "ipv6_address"),
            {key: "not supported; ignored" for key in ("link_local_ips", "mac_address", "driver_opts", "priority", "gw_priority", "interface_name")},
        )
        attachments.append(
            NetworkAttachment(
                network=name,
                aliases=entry.str_list("aliases", allow_string=False, check=values.plain),
                ipv4_address=entry.checked("ipv4_address", values.ip_address),
                ipv6_address=entry.checked("ipv6_address", values.ip_address),
            )
        )
    return tuple(attachments)


def read_extra_hosts(section: Section) -> tuple[str, ...]:
    """`host=ip` / `host:ip` / `host=ip1,ip2` entries, or a map of host -> address or list of
    addresses (compose-go's forms), each address checked -> the engine's `host:ip` entries."""
    value = section.raw("extra_hosts")
    hosts: list[str] = []
    if isinstance(value, YMap):
        for host, addresses in value.items():
            path, where = f"{section.key_path('extra_hosts')}.{host}", value.key_where[host]
            items = list(addresses) if isinstance(addresses, YSeq) else [addresses]
            for address in items:
                try:
                    if address is None or isinstance(address, (YMap, YSeq)):
                        raise ValueError(f"must be an IP address or a list of them, not {type_name(address)}")
                    hosts.append(values.extra_host(f"{host}={to_str(address)}"))
                except ValueError as exc:
                    section.ctx.problems.error(where, path, str(exc))
        return tuple(hosts)
    for item, path, where in section.seq("extra_hosts"):
        try:
            if not isinstance(item, str):
                raise ValueError(f"must be a 'host=ip' string, not {type_name(item)}")
            hosts.extend(values.extra_hosts(item))
        except ValueError as exc:
            section.ctx.problems.error(where, path, str(exc))
    return tuple(hosts)
