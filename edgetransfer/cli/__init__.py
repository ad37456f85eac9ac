"""The `edgetransfer` command line: the Click group (main.py) and options made from configs."""

from .main import cli, main

__all__ = ["cli", "main"]
