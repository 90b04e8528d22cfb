"""The deploy route's heavy part, off the event loop: decoding the body and loading the stack.

`PUT /v1/stacks/{stack}` reads the body's bytes on the loop and hands them to a worker process
(orchestrator/workers.py) that does everything else: the JSON decode (a 1 MiB body of small
values costs ~0.1-0.2 s), the YAML parse, interpolation, merge and validation. The StackSpec comes
back, or the error the caller made (StackFileError with every problem, RequestError), as if it
had run here. The worker's budget turns into 4xx answers that name the limit:

    parse_timeout exceeded     400 parse_timeout     (the worker is killed and replaced)
    out of memory / worker died 400 stack_too_large  (RLIMIT_AS of worker_memory() in the worker)
    nested beyond recursion    400 stack_too_deep
    every worker busy and
    MAX_WAITING loads waiting  503 loader_busy       (retry later)

So a hostile body costs the daemon at most one worker for parse_timeout seconds, and never the
loop: replica replacement, the ingress and every other request go on meanwhile.
"""

from __future__ import annotations

from aiohttp import web

from orchestrator.api import bodies
from orchestrator.api.errors import RequestError
from orchestrator.model.spec import StackSpec
from orchestrator.settings import Settings
from orchestrator.stackfile import Limits, load_stack_text
from orchestrator.workers import Budget, WorkerBusy, WorkerDied, WorkerOutOfMemory, WorkerPool, WorkerTimeout

#: Address space of a stack-loading worker. Real stack files of the body limit need a few dozen
#: MiB; a body of many alias bombs just under the node cap (~50 MiB each) reaches it.
WORKER_MEMORY = 1 << 30


def worker_memory(settings: Settings) -> int:
    """WORKER_MEMORY, or 64 times the body limit when that was raised past 16 MiB."""
    return max(WORKER_MEMORY, 64 * settings.max_body_bytes)


#: Deploys that may wait for a busy worker; more get 503 at once.
MAX_WAITING = 8
#: What the forkserver imports once, so that a replaced worker is ready at once.
PRELOAD = ("orchestrator.api.loading",)


def load_deploy(stack: str, content_type: str, body: bytes, base_dir: str, limits: Limits = Limits()) -> StackSpec:
    """In the worker: the deploy body (as `bodies.parse_deploy` reads it) -> StackSpec.
    The request's env only: the daemon's own environment (its token…) is never interpolated."""
    deploy = bodies.parse_deploy(content_type, body, base_dir)
    return load_stack_text(deploy.files, deploy.base_dir, env=deploy.env, name=stack, limits=limits,
                           deploying=True)


class StackLoader:
    def __init__(self, settings: Settings) -> None:
        self._budget = Budget(timeout=settings.parse_timeout, memory_bytes=worker_memory(settings),
                              workers=settings.parse_workers, max_waiting=MAX_WAITING)
        self._pool = WorkerPool(self._budget, preload=PRELOAD)
        self._limits = Limits.from_settings(settings)

    async def start(self) -> None:
        await self._pool.start()

    async def close(self) -> None:
        await self._pool.close()

    async def load(self, stack: str, content_type: str, body: bytes, base_dir: str = "/") -> StackSpec:
        """`base_dir`: the query's, for a YAML body (a JSON body names its own)."""
        try:
            return await self._pool.run(load_deploy, stack, content_type, body, base_dir, self._limits)
        except WorkerBusy:
            raise RequestError(
                f"the daemon is busy loading other stack files ({self._budget.workers} at work, "
                f"{MAX_WAITING} waiting); retry shortly", code="loader_busy", status=503) from None
        except WorkerTimeout:
            raise RequestError(
                f"loading the stack file took longer than {self._budget.timeout:g} s, the limit "
                "parse_timeout (ORCHESTRATOR_PARSE_TIMEOUT): make it smaller or less nested, or "
                "raise the limit", code="parse_timeout") from None
        except (WorkerOutOfMemory, WorkerDied) as exc:
            raise RequestError(
                f"loading the stack file needed more than the {self._budget.memory_bytes >> 20} MiB "
                f"a loading worker may use ({exc}): it is too large, or expands too much through "
                "anchors and aliases", code="stack_too_large") from None
        except RecursionError:
            raise RequestError("the stack file is nested too deeply to be read",
                               code="stack_too_deep") from None


#: Where make_app keeps the app's StackLoader.
LOADER = web.AppKey("loader", StackLoader)
