"""The dashboard: a live page the daemon serves at `/` (docs/dashboard.md).

The page is static: HTML, CSS and ES modules shipped in `static/`, no build step and nothing
from elsewhere. It holds no data, so it and its files are served without a token; everything it
shows it reads through the API with the token the user gives it (kept in the browser's session
storage), as the CLI does. It loads the views once and then follows `GET /v1/events`, refetching
a stack's views only when an event says something it does not carry itself.

Every answer from here carries a strict Content-Security-Policy (scripts and styles from this
origin only, no inline code, no framing), so a stack name or an error message can never become
code: the page inserts them as text.
"""

from orchestrator.dashboard.assets import PUBLIC_PATHS, add_routes

__all__ = ["PUBLIC_PATHS", "add_routes"]
