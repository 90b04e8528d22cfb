"""A Redis URL's secret, and the URL as it may be shown: `redis://:***@host:6379/0`.

redis-py takes the password from the URL's user info (`redis://[user]:password@host`) or from a
`password=` query parameter, percent-decoded; no message, log line or event may carry it.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from orchestrator.logs import REDACTED


def url_secrets(url: str) -> tuple[str, ...]:
    """The passwords in `url`, as written and as decoded (none: ())."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ()
    written = [parts.password or ""]
    written += [value for key, _, value in (p.partition("=") for p in parts.query.split("&"))
                if key == "password"]
    return tuple(dict.fromkeys(form for w in written if w for form in (w, unquote(w))))


def shown_url(url: str) -> str:
    """`url` with its passwords replaced by ***; a URL that does not parse is not shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid Redis URL)"
    shown = url
    userinfo, at, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    if at and colon:
        shown = shown.replace(f"//{parts.netloc}", f"//{user}:{REDACTED}@{host}", 1)
    if parts.query:
        query = "&".join(f"password={REDACTED}" if p.partition("=")[0] == "password" else p
                         for p in parts.query.split("&"))
        shown = shown.replace(f"?{parts.query}", f"?{query}", 1)
    return shown
