"""Camera sources and item recognition (see issue 4)."""
