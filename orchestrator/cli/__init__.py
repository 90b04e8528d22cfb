"""The `orchestrator` command: argument parsing, the HTTP client, tables."""
