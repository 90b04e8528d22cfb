"""State changes as event messages on Redis: building, numbering, sending, reading back."""
