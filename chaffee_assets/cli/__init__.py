"""The `chaffee` command."""

from chaffee_assets.cli.main import main

__all__ = ["main"]
