"""An aiohttp client of the daemon's HTTP API, for the CLI (and scripts).

`host` is `http://host:port`, `unix:///path/to.sock` (or a bare `host:port`). Transport
failures become DaemonUnreachable; any non-2xx answer becomes ApiError with the API's code.
Every stack and service name goes into a URL only after the name check, and quoted: a name
like `x/../other` must never reach another stack's route.
"""

from __future__ import annotations

import json
from urllib.parse import quote
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any

import aiohttp

from orchestrator import names
from orchestrator.errors import OrchestratorError, UserError


class DaemonUnreachable(OrchestratorError):
    def __init__(self, host: str, reason: str) -> None:
        super().__init__(
            f"the daemon is not running at {host} ({reason}); start it with `orchestrator daemon`"
            " or point --host / ORCHESTRATOR_HOST at it")
        self.host = host


class ApiError(OrchestratorError):
    def __init__(self, status: int, code: str, message: str, path: str | None = None,
                 problems: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.path = path
        self.problems = list(problems)


def _segment(name: str) -> str:
    """A name as one URL path segment. Service names are the wider rule (stack names are a
    subset); the daemon checks the exact rule of each."""
    if not names.is_service_name(name):
        raise UserError(f"invalid name {name!r}: use {names.SERVICE_RULE}")
    return quote(name, safe="")


def _transport(host: str) -> tuple[str, aiohttp.BaseConnector | None]:
    """Base URL and connector for `host` (None: the default TCP connector)."""
    if host.startswith("unix://"):
        return "http://localhost", aiohttp.UnixConnector(path=host.removeprefix("unix://"))
    if host.startswith("tcp://"):
        host = "http://" + host.removeprefix("tcp://")
    elif "://" not in host:
        host = "http://" + host
    return host.rstrip("/"), None


class Client:
    def __init__(self, host: str, token: str = "", timeout: float = 30.0) -> None:
        self.host = host
        self._base, connector = _transport(host)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = aiohttp.ClientSession(
            connector=connector, headers=headers,
            timeout=aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=timeout))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    # --------------------------------------------------------------------- transport
    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with self._session.request(method, self._base + path, **kwargs) as response:
                body = await response.read()
                if response.status >= 400:
                    raise _api_error(response.status, body)
        except aiohttp.ClientConnectionError as exc:
            raise DaemonUnreachable(self.host, str(exc) or type(exc).__name__) from None
        return json.loads(body) if body else None

    async def lines(self, path: str, params: Mapping[str, str]) -> AsyncIterator[bytes]:
        """A streamed answer, line by line (logs)."""
        try:
            async with self._session.get(self._base + path, params=params,
                                         timeout=aiohttp.ClientTimeout(total=None, connect=5.0)) as response:
                if response.status >= 400:
                    raise _api_error(response.status, await response.read())
                async for line in response.content:
                    yield line
        except aiohttp.ClientConnectionError as exc:
            raise DaemonUnreachable(self.host, str(exc) or type(exc).__name__) from None

    # --------------------------------------------------------------------- the API
    async def stacks(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/v1/stacks")  # type: ignore[no-any-return]

    async def deploy(self, stack: str, files: Sequence[tuple[str, str]], env: Mapping[str, str],
                     base_dir: str) -> dict[str, Any]:
        body = {"files": [{"name": n, "content": c} for n, c in files], "env": dict(env),
                "base_dir": base_dir}
        return await self.request("PUT", f"/v1/stacks/{_segment(stack)}", json=body)  # type: ignore[no-any-return]

    async def inspect(self, stack: str) -> dict[str, Any]:
        return await self.request("GET", f"/v1/stacks/{_segment(stack)}")  # type: ignore[no-any-return]

    async def services(self, stack: str) -> list[dict[str, Any]]:
        return await self.request("GET", f"/v1/stacks/{_segment(stack)}/services")  # type: ignore[no-any-return]

    async def tasks(self, stack: str, *, history: bool = False) -> list[dict[str, Any]]:
        params = {"all": "true" if history else "false"}
        return await self.request("GET", f"/v1/stacks/{_segment(stack)}/tasks", params=params)  # type: ignore[no-any-return]

    async def scale(self, stack: str, counts: Mapping[str, int]) -> None:
        await self.request("POST", f"/v1/stacks/{_segment(stack)}/scale", json=dict(counts))

    async def remove(self, stack: str, *, volumes: bool = False) -> dict[str, Any]:
        """`{"removed": true, ...}`, or `removed: false` with a `message` while it goes on."""
        return await self.request("DELETE", f"/v1/stacks/{_segment(stack)}",  # type: ignore[no-any-return]
                                  params={"volumes": "true" if volumes else "false"})

    async def rollback(self, stack: str, service: str) -> None:
        await self.request("POST", f"/v1/stacks/{_segment(stack)}/services/{_segment(service)}/rollback")

    async def logs(self, stack: str, service: str, *, follow: bool = False,
                   tail: int | None = None) -> AsyncIterator[dict[str, Any]]:
        params = {"follow": "true" if follow else "false", "tail": "all" if tail is None else str(tail)}
        async for raw in self.lines(f"/v1/stacks/{_segment(stack)}/services/{_segment(service)}/logs", params):
            if not raw.strip():
                continue
            line = json.loads(raw)
            if "error" in line:  # the stream failed after it started
                raise ApiError(200, line["error"]["code"], line["error"]["message"])
            yield line


def _api_error(status: int, body: bytes) -> ApiError:
    try:
        error = json.loads(body)["error"]
        return ApiError(status, str(error["code"]), str(error["message"]), error.get("path"),
                        error.get("problems") or ())
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()[:200]
        return ApiError(status, f"http_{status}", text or f"HTTP {status}")
