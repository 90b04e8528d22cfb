"""The one rule for each kind of name a user gives: a stack, a service.

Every place that takes a name (the stack-file loader, the HTTP API's paths and bodies, the CLI)
checks it here, so a name that can be deployed can also be scaled, logged and rolled back.

- Stack: as `docker stack deploy` normalises it (lowercase, `[a-z0-9_-]`), at most 63 characters
  so that `<stack>_<name>` network and volume names stay readable.
- Service: the compose-spec's characters (`[a-zA-Z0-9._-]`, starting with a letter or digit), at
  most 63: the service name is a DNS alias on the stack's networks, and a DNS label has 63.
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 63

#: fullmatch only: `$` would also accept a trailing newline.
STACK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
SERVICE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}")

STACK_RULE = "1-63 characters a-z, 0-9, '_' or '-', starting with a letter or digit"
SERVICE_RULE = "1-63 characters a-z, A-Z, 0-9, '_', '.' or '-', starting with a letter or digit"


def is_stack_name(name: object) -> bool:
    return isinstance(name, str) and STACK_NAME.fullmatch(name) is not None


def is_service_name(name: object) -> bool:
    return isinstance(name, str) and SERVICE_NAME.fullmatch(name) is not None
