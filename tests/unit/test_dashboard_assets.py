"""The dashboard's files as the daemon serves them: open without a token (and nothing else
new is), a strict Content-Security-Policy on every answer, revalidation by ETag, and static
checks of the page itself: no inline code, every file it loads exists, and daemon text only
ever reaches the DOM as text."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api import make_app
from orchestrator.api.auth import OPEN_PATHS
from orchestrator.dashboard import assets
from orchestrator.settings import Settings
from tests.unit.conftest import AUTH, TOKEN
from tests.unit.fake_control import FakeControl


@pytest.fixture(name="anonymous")
async def _anonymous() -> TestClient:
    """A client without the token, over TCP."""
    app = make_app(FakeControl(), Settings(token=TOKEN))
    async with TestClient(TestServer(app)) as client:
        yield client


def _csp(header: str) -> dict[str, str]:
    return {d.split(" ", 1)[0]: d.partition(" ")[2] for d in (p.strip() for p in header.split(";"))}


async def test_the_page_needs_no_token_and_carries_a_strict_policy(anonymous: TestClient) -> None:
    response = await anonymous.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "<title>orchestrator</title>" in await response.text()
    policy = _csp(response.headers["Content-Security-Policy"])
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("name", assets.FILES)
async def test_every_file_is_served_with_its_type_and_the_policy(anonymous: TestClient, name: str) -> None:
    response = await anonymous.get(f"/ui/{name}")
    assert response.status == 200
    suffix = name.rpartition(".")[2]
    expected = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}[suffix]
    assert response.headers["Content-Type"].startswith(expected)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in response.headers
    assert await response.read() == assets.ASSETS[name].body


async def test_an_unchanged_file_is_a_304(anonymous: TestClient) -> None:
    first = await anonymous.get("/ui/app.js")
    again = await anonymous.get("/ui/app.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    assert await again.read() == b""
    other = await anonymous.get("/ui/app.js", headers={"If-None-Match": '"something-else"'})
    assert other.status == 200


async def test_nothing_else_opens_without_the_token(anonymous: TestClient) -> None:
    assert OPEN_PATHS == {"/v1/health", "/", *(f"/ui/{name}" for name in assets.FILES)}
    for path in ("/v1/stacks", "/v1/events", "/metrics", "/ui/missing.js", "/ui/index.html",
                 "/ui/../v1/stacks", "/ui/%2e%2e/v1/stacks", "/ui/"):
        response = await anonymous.get(path)
        assert response.status == 401, path
    # With the token an unknown file is a plain 404: no path is ever built from the URL.
    async with TestClient(TestServer(make_app(FakeControl(), Settings(token=TOKEN))),
                          headers=AUTH) as client:
        for path in ("/ui/missing.js", "/ui/index.html", "/ui/%2e%2e%2fassets.py"):
            response = await client.get(path)
            assert response.status == 404, path
            assert (await response.json())["error"]["code"] == "not_found"


class _Page(HTMLParser):
    """What index.html loads, and anything inline that data could break out of."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and not named.get("src"):
            self.inline.append("<script> without src")
        if tag == "style":
            self.inline.append("<style>")
        for key, _ in attrs:
            if key == "style" or key.startswith("on"):
                self.inline.append(f"{tag} {key}=")
        for key in ("src", "href"):
            if named.get(key):
                self.loads.append(named[key] or "")


def test_the_page_has_no_inline_code_and_loads_only_its_own_files() -> None:
    page = _Page()
    page.feed(assets.ASSETS[assets.PAGE].body.decode())
    assert page.inline == []
    assert page.loads and all(path.startswith(assets.PREFIX) for path in page.loads)
    assert {path.removeprefix(assets.PREFIX) for path in page.loads} <= set(assets.FILES)


SCRIPTS = [name for name in assets.FILES if name.endswith(".js")]
IMPORT = re.compile(r'^import .* from "\./([^"]+)";$', re.MULTILINE)


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_import_only_files_that_exist(name: str) -> None:
    imported = IMPORT.findall(assets.ASSETS[name].body.decode())
    assert set(imported) <= set(SCRIPTS), imported


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_never_turn_text_into_markup_or_code(name: str) -> None:
    """Names, errors and reasons come from users and the engine: they go in with textContent
    (dom.js), never as HTML, and nothing is evaluated."""
    source = assets.ASSETS[name].body.decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(",
                 "new Function", "createContextualFragment", "srcdoc"):
        assert sink not in source, f"{name} uses {sink}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_never_put_the_token_in_a_url(name: str) -> None:
    source = assets.ASSETS[name].body.decode()
    assert not re.search(r"[?&](token|access_token)=", source), name
    assert "new EventSource" not in source  # it cannot send the header: fetch() reads the stream
