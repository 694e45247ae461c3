"""``vitaledge eval``: accuracy evaluations, one module per target, listed explicitly."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

__all__ = ["add_parser"]

_TARGET_MODULES: tuple[str, ...] = ("edge.evaluation.rppg", "edge.evaluation.thermal", "edge.evaluation.masks")


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("eval", help="measure accuracy against ground truth")
    targets = parser.add_subparsers(dest="target", required=True, metavar="TARGET")
    for module_name in _TARGET_MODULES:
        importlib.import_module(module_name).add_parser(targets)
