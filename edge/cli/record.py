"""``vitaledge record``: record the configured sources into a session folder for ``replay``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from edge.config import add_config_option

__all__ = ["add_parser", "record", "run"]

_log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "record",
        help="record the configured sources (lossless) into a folder that the replay source plays back",
        description="Record every configured source into OUT: webcam video as FFV1/MKV (or PNG), thermal "
        "frames as .npz chunks, wristband readings as E4-style CSV, and a manifest of every sample. "
        "Play it back with a source of kind 'replay' (path: OUT).",
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="session folder to create (must not hold a session)")
    parser.add_argument("--seconds", type=float, required=True, help="stop after this long (or when all sources end)")
    add_config_option(parser)
    parser.add_argument("--png", action="store_true", help="store video as PNG frames instead of FFV1")
    parser.add_argument(
        "--shareable",
        action="store_true",
        help="store only lensed images (privacy.mode of the configuration, which must not be off)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(func=run)


async def record(
    cfg: Any,
    out: Path,
    seconds: float,
    *,
    png: bool = False,
    queue_size: int = 64,
    progress: TextIO | None = None,
    shareable: bool = False,
) -> dict[str, Any]:
    """Record ``cfg``'s sources into ``out`` for ``seconds`` (or until every source ends).

    Args:
        cfg: the validated VitalEdgeConfig.
        out: the session folder.
        seconds: wall-clock limit.
        png: store video as PNG frames.
        queue_size: samples waiting for the encoder before the sources are made to wait.
        progress: a terminal on which to redraw a progress line (about once a second), or None.
        shareable: store images only through the configured privacy lens (``privacy.mode``).

    Returns:
        A summary: folder, seconds, counts per sample type, dropped per source, video codec, and the
        sources that failed during the recording (their samples up to the failure are kept).

    Raises:
        SourceUnavailableError: a source could not be opened.
        VitalEdgeError: the folder already holds a session.
    """
    from edge.build import build_source
    from edge.privacy import build_lensing
    from edge.recorder import Recorder
    from fusion.errors import ConfigError, SourceError

    lensing = build_lensing(cfg.privacy.mode) if shareable else None
    if shareable and lensing is None:
        raise ConfigError("--shareable needs privacy.mode other than 'off' in the configuration")
    sources = [build_source(s) for s in cfg.sources]
    described = {s.name: s.model_dump(mode="json") for s in cfg.sources}
    recorder = Recorder(out, video_codec="png" if png else None, sources=described, lensing=lensing)
    started = time.monotonic()
    failed: dict[str, str] = {}
    try:
        async with contextlib.AsyncExitStack() as stack:
            for source in sources:
                await stack.enter_async_context(source)

            # Sources and the encoder run side by side: a bounded queue between them, so a source
            # waits (rather than anything being lost) only when encoding falls a queue behind.
            queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)

            async def pump(source: Any) -> None:
                try:
                    async for sample in source.samples():
                        await queue.put(sample)
                except SourceError as exc:  # one failed source ends its stream, not the recording
                    _log.error("%s: stopped recording this source: %s", source.name, exc)
                    failed[source.name] = str(exc)

            async def writer() -> None:
                drawn_s = -1.0
                while (sample := await queue.get()) is not None:
                    await asyncio.to_thread(recorder.write, sample)
                    if progress is not None and time.monotonic() - drawn_s >= 1.0:
                        drawn_s = time.monotonic()
                        _draw_progress(progress, drawn_s - started, seconds, recorder.counts)
                if progress is not None and drawn_s >= 0:
                    progress.write("\n")

            write_task = asyncio.create_task(writer())
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(seconds):
                        async with asyncio.TaskGroup() as tasks:
                            for source in sources:
                                tasks.create_task(pump(source))
                await queue.put(None)  # what was queued before the end is still written
                await write_task
            finally:
                write_task.cancel()
    finally:
        recorder.dropped = {s.name: int(s.dropped) for s in sources}
        await asyncio.to_thread(recorder.close)
    return {
        "folder": str(out),
        "seconds": round(time.monotonic() - started, 3),
        "counts": dict(recorder.counts),
        "dropped": recorder.dropped,
        "video_codec": recorder.video_codec,
        "failed": failed,
    }


def run(args: argparse.Namespace) -> int:
    from edge.config import config_path, load_config
    from edge.preflight import check_files
    from fusion.errors import ConfigError

    path = config_path(args.config)
    cfg = load_config(path)
    if not cfg.sources:
        raise ConfigError(f"{path or 'configuration'}: sources: nothing to record")
    check_files(cfg, str(path or "configuration"))
    if not args.seconds > 0:
        raise ConfigError("--seconds must be positive")
    progress = sys.stderr if sys.stderr.isatty() and not args.json else None
    summary = asyncio.run(
        record(cfg, args.out, args.seconds, png=args.png, progress=progress, shareable=args.shareable)
    )
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(summary["counts"].items())) or "nothing"
        print(f"recorded {counts} in {summary['seconds']:.1f} s into {summary['folder']} ({summary['video_codec']})")
        for name, reason in summary["failed"].items():
            print(f"source {name} failed during the recording (kept what came before): {reason}", file=sys.stderr)
    return 0


def _draw_progress(stream: TextIO, elapsed_s: float, seconds: float, counts: Any) -> None:
    done = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "waiting for samples"
    stream.write(f"\r\x1b[2Krecording {elapsed_s:4.0f} / {seconds:g} s: {done}")
    stream.flush()
