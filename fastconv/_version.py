"""The single source of fastconv's version."""

__version__ = "0.1.0"
