"""Moved to :mod:`emokeras.cli.args` (kept so ``from emokeras.cliargs import ...`` still works)."""

from __future__ import annotations

from emokeras.cli.args import add_config_arguments, config_from_arguments

__all__ = ["add_config_arguments", "config_from_arguments"]
