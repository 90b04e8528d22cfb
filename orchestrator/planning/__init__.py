"""Pure planning: from a desired spec and an observed snapshot to actions. No I/O."""
