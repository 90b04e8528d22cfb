"""Typed keys of what make_app stores on the aiohttp Application."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.control import Control
from orchestrator.model import StackSpec
from orchestrator.settings import Settings

#: stackfile.load_stack_text's signature: (files as (name, text), base_dir, env, name) -> spec.
StackLoader = Callable[[Sequence[tuple[str, str]], Path, Mapping[str, str] | None, str | None], StackSpec]

CONTROL = web.AppKey("control", Control)
SETTINGS = web.AppKey("settings", Settings)
#: redis.asyncio.Redis or None (then /v1/events answers 503).
REDIS = web.AppKey("redis", Any)
LOADER = web.AppKey("loader", StackLoader)
BODY_LIMIT = web.AppKey("body_limit", int)
#: Set when the app shuts down, so long-lived streams end promptly.
STOPPING = web.AppKey("stopping", asyncio.Event)
