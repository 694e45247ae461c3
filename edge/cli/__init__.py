"""The ``vitaledge`` command line: one module per subcommand, listed explicitly below.

Each command module exposes ``add_parser(subparsers)`` (registers its parser and sets
``func=run``) and ``run(args) -> int``; heavy imports stay inside ``run`` so ``--help`` is quick.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from fusion.errors import VitalEdgeError

__all__ = ["main"]

# Explicit, in the order `vitaledge --help` lists them.
_COMMAND_MODULES = (
    "edge.cli.run",
    "edge.cli.demo",
    "edge.cli.record",
    "edge.cli.eval",
    "edge.cli.calibrate",
    "edge.cli.bench",
    "edge.cli.train",
    "edge.cli.inspect",
    "edge.cli.flir_constants",
)

# Libraries whose INFO lines (the embedded broker's state machine: ~20 per start) bury the app's own,
# such as the overlay URL; --verbose shows them.
_NOISY_LOGGERS = ("transitions", "amqtt", "aiohttp.access")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitaledge", description="Contact-free vital signs at the edge.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vitaledge`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if args.verbose else logging.WARNING)
    if not args.verbose:
        _quiet_opencv()
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that has gone shows here, where it can still be handled
        return code
    except BrokenPipeError:
        return _reader_gone()
    except VitalEdgeError as exc:  # expected failures: one clear line, no traceback
        print(f"vitaledge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130



def _reader_gone() -> int:
    """``vitaledge inspect … | head -1``: the reader closed the pipe; stop quietly, as Unix tools do.

    Returns:
        141, the status a shell reports for a process ended by SIGPIPE.
    """
    # Python would flush stdout again at exit and print "Exception ignored … BrokenPipeError".
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def _quiet_opencv() -> None:
    """OpenCV's own warnings (V4L2 probing a missing camera: ``[ WARN:0] … can't open camera by index``)
    are printed by its C++ logger, around our one-line error; --verbose leaves them on."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")  # read when cv2 is first imported
    cv2 = sys.modules.get("cv2")
    if cv2 is not None:  # already imported (tests, or a command that imported it early)
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
