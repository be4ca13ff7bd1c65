"""The package version (read by ``pyproject.toml`` too: written once)."""

__version__ = "0.1.0"
