"""The HTTP control endpoint (aiohttp). See docs/api.md."""

from orchestrator.api.app import check_exposure, make_app, serve

__all__ = ["check_exposure", "make_app", "serve"]
