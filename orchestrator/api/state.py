"""Typed keys of what make_app stores on the aiohttp Application."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from orchestrator.api.event_hub import EventHub
from orchestrator.views import Control
from orchestrator.settings import Settings

CONTROL = web.AppKey("control", Control)
SETTINGS = web.AppKey("settings", Settings)
#: redis.asyncio.Redis or None (then /v1/events answers 503).
REDIS = web.AppKey("redis", Any)  # redis.asyncio.Redis | None
BODY_LIMIT = web.AppKey("body_limit", int)
#: Set when the app shuts down, so long-lived streams end promptly.
STOPPING = web.AppKey("stopping", asyncio.Event)
#: event_hub.EventHub: the one Redis subscription every event stream follows (None without Redis).
EVENT_HUB: web.AppKey[EventHub | None] = web.AppKey("event_hub")
