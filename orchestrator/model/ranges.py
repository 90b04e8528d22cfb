"""What the engine accepts for a spec's numbers: the stack-file loader checks every value
against these before anything is stored (docs/stackfile.md lists them)."""

from __future__ import annotations

# --------------------------------------------------------------------------- ranges

# What the engine accepts for the numbers below (the stack-file loader checks every value against
# these before anything is stored; docs/stackfile.md lists them). Host-independent on purpose: a
# spec valid here is valid on any engine, so the loader needs no engine to check it.

#: The engine's numbers are Go int64 (bytes, nanoseconds, ulimits, PidsLimit).
INT64_MAX = 2**63 - 1
#: Counts that have no natural bound (retries, max_attempts, parallelism): a 32-bit int.
MAX_COUNT = 2**31 - 1
#: Durations: at most a year (the engine takes int64 nanoseconds, ~292 years; nobody waits a year).
MAX_DURATION = 365 * 24 * 3600.0
#: CPUs: the engine refuses less than 0.01 (NanoCpus 10^7) and more than the host has; 1,024 is
#: the host-independent ceiling (0 means no limit, as the engine reads it).
MIN_CPUS = 0.01
MAX_CPUS = 1024.0
#: The engine refuses a memory limit or reservation under 6 MiB (0 means none).
MIN_MEMORY = 6 << 20
#: The kernel's HOST_NAME_MAX.
MAX_HOSTNAME = 64
