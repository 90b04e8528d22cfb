"""The data the daemon reasons about: the desired spec, what it observes, what it plans."""
