"""``vitaledge run``: the service. Runs the configured sources until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from edge.config import add_config_option

__all__ = ["add_parser", "run"]

_log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser("run", help="run the service on the configured devices")
    add_config_option(parser)
    parser.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    parser.add_argument(
        "--window", action="store_true", help="also show the annotated webcam frame in a window (needs a display)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.config import config_path, load_config
    from edge.preflight import check_files, no_file_hint
    from fusion.errors import ConfigError

    path = config_path(args.config)
    cfg = load_config(path)
    if getattr(args, "window", False):
        cfg = cfg.model_copy(update={"overlay": cfg.overlay.model_copy(update={"window": True})})
    where = path or "the environment"
    if not cfg.sources:
        if path is None:
            raise ConfigError(f"{no_file_hint()}, and $VITALEDGE_SOURCES does not name any sources")
        raise ConfigError(f"{where}: sources: no sources configured (see the README for examples)")
    check_files(cfg, str(where))
    if args.check_config:
        kinds = ", ".join(f"{s.name} ({s.kind})" for s in cfg.sources)
        print(f"{where}: OK — device {cfg.device_id}, sources: {kinds}")
        return 0
    logging.getLogger().setLevel(cfg.log_level)
    asyncio.run(_serve(cfg))
    return 0


async def _serve(cfg: Any) -> None:
    import sys

    from edge.app import run_app
    from edge.status_line import status_sinks

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stats = await run_app(cfg, stop=stop, extra_sinks=status_sinks(sys.stderr))
    _log.info("stopped after %d records", stats.records)
