"""The project's exception tree. Library errors are converted at the boundary (`from exc`)."""

from __future__ import annotations


class OrchestratorError(Exception):
    """Root of everything the daemon raises on purpose."""


class UserError(OrchestratorError):
    """The caller's mistake (bad stack file, unknown stack, bad request): a 4xx, exit code 1."""


class IngressError(OrchestratorError):
    """A published port cannot be served (address in use, unsupported protocol)."""


class EngineUnavailable(OrchestratorError):
    """The Docker engine cannot be reached."""


class EngineError(OrchestratorError):
    """The engine refused a request; `status` is its HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"[{status}] {message}")
        self.status = status
        self.message = message


class StuckNetworks(EngineError):
    """Networks the engine will not remove though no container is attached: it still counts
    endpoints no container holds (dockerd 20.10's libnetwork leaks them under heavy churn; only
    a dockerd restart clears the count). `networks`: their names."""

    def __init__(self, status: int, networks: list[str]) -> None:
        super().__init__(status, f"the engine counts active endpoints on {', '.join(networks)} "
                                 "though no container is attached (a dockerd restart clears it)")
        self.networks = networks


class ImageUnavailable(EngineError):
    """A service's image is neither present, nor pullable, nor buildable; `reason` is the
    engine's own message (shown to the user as the replica's `rejected` reason)."""

    def __init__(self, image: str, reason: str) -> None:
        super().__init__(0, f"image {image} is unavailable: {reason}")
        self.image = image
        self.reason = reason


class UnknownStack(UserError):
    def __init__(self, stack: str) -> None:
        super().__init__(f"no such stack: {stack}")
        self.stack = stack


class UnknownService(UserError):
    def __init__(self, stack: str, service: str) -> None:
        super().__init__(f"no such service in stack {stack}: {service}")
        self.stack = stack
        self.service = service


class Conflict(UserError):
    """The request is valid but clashes with the current state (HTTP 409); `path` names the
    stack file key it is about, when there is one."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class LimitExceeded(UserError):
    """Over a limit a setting sets (HTTP 400 `limit_exceeded`); the message names the setting,
    `path` the request key that asked for too much (None: the request as a whole)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path
