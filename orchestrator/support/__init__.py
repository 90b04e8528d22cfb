"""Small helpers with no knowledge of the domain, used across the packages."""
