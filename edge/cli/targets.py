"""A command whose subcommands are targets, one module each (``vitaledge eval …``, ``vitaledge bench …``)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["target_command"]

AddParser = Callable[["argparse._SubParsersAction[Any]"], None]


def target_command(name: str, help_text: str, target_modules: tuple[str, ...]) -> AddParser:
    """An ``add_parser`` for a command whose targets are modules, each with its own ``add_parser``.

    Args:
        name: the command (``eval``, ``bench``).
        help_text: its one-line help.
        target_modules: the target modules, in the order ``--help`` lists them.

    Returns:
        The command module's ``add_parser``.
    """

    def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
        parser = sub.add_parser(name, help=help_text)
        targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
        for module_name in target_modules:
            importlib.import_module(module_name).add_parser(targets)

    return add_parser
