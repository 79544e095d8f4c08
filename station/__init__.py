"""packstation: the packing-station verification daemon."""

__version__ = "0.1.0"
