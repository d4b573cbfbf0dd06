"""Headwater: CLI, settings and the local stack (glue that belongs to no pipeline package)."""

__version__ = "0.1.0"
