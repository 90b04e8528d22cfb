"""The log keeps secrets out: no locals in tracebacks, the standard library's records through
the same JSON renderer, the token and the Redis password replaced wherever they occur."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from orchestrator import logs
from orchestrator.api import make_app
from orchestrator.publishing.redis_url import shown_url, url_secrets
from orchestrator.settings import Settings
from tests.unit.conftest import AUTH, TOKEN
from tests.unit.fake_control import FakeControl

PASSWORD = "r3dis-pa55"


@pytest.fixture(name="stream")
def _stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    monkeypatch.setattr(logs, "REDACTOR", logs.Redactor())
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.configure_logging("info", json=True, stream=stream)
    logs.redact(TOKEN, *url_secrets(f"redis://:{PASSWORD}@127.0.0.1:6379/0"))
    try:
        yield stream
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = saved


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class LeakyControl(FakeControl):
    def stacks(self) -> Any:
        token = TOKEN  # a local variable: a traceback with locals would print it
        raise RuntimeError(f"failed with {token} and redis://:{PASSWORD}@127.0.0.1:6379/0")


async def test_an_internal_error_logs_no_token_and_no_locals(stream: io.StringIO) -> None:
    app = make_app(LeakyControl(), Settings(token=TOKEN))
    async with TestClient(TestServer(app), headers=AUTH) as client:
        assert (await client.get("/v1/stacks")).status == 500
    text = stream.getvalue()
    assert TOKEN not in text and PASSWORD not in text
    [failed] = [line for line in lines(stream) if line["event"] == "request_failed"]
    [exception] = failed["exception"]
    assert exception["exc_value"] == "failed with *** and redis://:***@127.0.0.1:6379/0"
    assert all("locals" not in frame for frame in exception["frames"])


def test_standard_library_records_are_json_without_locals(stream: io.StringIO) -> None:
    secret_bytes = b"GET /" + TOKEN.encode()  # what aiohttp quotes of a malformed request
    try:
        raise ValueError(f"Invalid method encountered: {secret_bytes!r}")
    except ValueError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")
    logging.getLogger("asyncio").warning("plain %s", TOKEN)
    first, second = lines(stream)
    assert (first["event"], first["logger"], first["level"]) == (
        "Error handling request from 127.0.0.1", "aiohttp.server", "error")
    assert "***" in first["exception"][0]["exc_value"]
    assert all("locals" not in frame for frame in first["exception"][0]["frames"])
    assert second == {**second, "event": "plain ***", "logger": "asyncio", "level": "warning"}
    assert TOKEN not in stream.getvalue()


def test_the_redactor_reaches_into_nested_values() -> None:
    redactor = logs.Redactor()
    redactor.add("abc", "abcdef", "")
    event = {"event": "x abcdef y", "nested": {"list": ["abc", 1, None, b"abc"], "abc": True}}
    assert redactor(None, "info", event) == {
        "event": "x *** y", "nested": {"list": ["***", 1, None, "b'***'"], "***": True}}


def test_the_console_renderer_shows_no_locals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "REDACTOR", logs.Redactor())
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.configure_logging("info", json=False, stream=stream)
        hidden = "value-of-a-local"  # noqa: F841 - what a traceback with locals would show
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            structlog.stdlib.get_logger().exception("failed")
    finally:
        structlog.reset_defaults()
        root.handlers[:], root.level = saved
    assert "RuntimeError: boom" in stream.getvalue() and "value-of-a-local" not in stream.getvalue()


@pytest.mark.parametrize(("url", "shown", "secrets"), [
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0", ()),
    ("redis://:pw@h:6379/0", "redis://:***@h:6379/0", ("pw",)),
    ("redis://user:p%40ss@h/0?db=1&password=q", "redis://user:***@h/0?db=1&password=***", ("p%40ss", "p@ss", "q")),
    ("unix:///run/redis.sock?password=z", "unix:///run/redis.sock?password=***", ("z",)),
    ("redis://[::1:6379", "(an invalid Redis URL)", ()),
])
def test_redis_urls_are_shown_without_their_password(url: str, shown: str, secrets: tuple[str, ...]) -> None:
    assert shown_url(url) == shown
    assert url_secrets(url) == secrets
