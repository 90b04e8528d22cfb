"""Serving the dashboard's static files: `/` is static/index.html, `/ui/<name>` the others.

The files are read once, when this module is imported (a few tens of KiB), so a request never
touches the disk and only names that exist are ever answered: no path is built from the URL.
Each answer is revalidated by its ETag (`Cache-Control: no-cache`), so a daemon upgrade shows the
new page at the next load while unchanged files cost a 304.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

PAGE = "index.html"
PREFIX = "/ui/"

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}

#: Only this origin's scripts, styles and connections; no inline code, plugins, forms or frames.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
])

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _load() -> dict[str, Asset]:
    folder = resources.files("orchestrator.dashboard") / "static"
    assets = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            assets[entry.name] = Asset(body, _TYPES[suffix], etag)
    return assets


ASSETS = _load()
#: The files under /ui/ (the page itself is only served at /).
FILES = tuple(sorted(name for name in ASSETS if name != PAGE))
#: What the auth middleware lets through without a token: the page and its files, nothing else.
PUBLIC_PATHS = frozenset({"/", *(PREFIX + name for name in FILES)})


def _answer(request: web.Request, asset: Asset) -> web.Response:
    headers = {**SECURITY_HEADERS, "ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers={**headers, "Content-Type": asset.content_type})


async def page(request: web.Request) -> web.Response:
    return _answer(request, ASSETS[PAGE])


async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["file"]
    if name not in FILES:
        raise web.HTTPNotFound()
    return _answer(request, ASSETS[name])


def add_routes(app: web.Application) -> None:
    app.router.add_routes([
        web.get("/", page, allow_head=False),
        web.get(PREFIX + "{file}", static_file, allow_head=False),
    ])
