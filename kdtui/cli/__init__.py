"""The ``kdtui`` command line (see ``kdtui.cli.main``)."""

from kdtui.cli.main import main

__all__ = ["main"]
