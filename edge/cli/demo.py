"""``vitaledge demo``: the whole pipeline on the built-in simulated rig, scored against its truth."""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import math
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge.privacy import PRESETS

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    parser = sub.add_parser(
        "demo", help="run the pipeline on the simulated rig (embedded MQTT broker unless --mqtt)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the rig runs (default 30)")
    parser.add_argument("--mqtt", metavar="URL", default=None, help="mqtt://HOST:PORT of a broker to use")
    parser.add_argument("--device-id", default="demo", help="device id in the topics (default demo)")
    parser.add_argument("--seed", type=int, default=1, help="rig seed (default 1)")
    parser.add_argument("--fast", action="store_true", help="run the rig as fast as possible, not real time")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument(
        "--records", metavar="FILE", type=Path, default=None, help="also write every record's JSON to FILE, one a line"
    )
    parser.add_argument(
        "--overlay-port", type=int, default=8088, metavar="PORT", help="overlay port (default 8088; 0: a free one)"
    )
    parser.add_argument(
        "--privacy",
        choices=PRESETS,
        default="off",
        help="privacy lens on every image that leaves (overlay, snapshots); default off",
    )
    parser.add_argument(
        "--lensed-heart-rate",
        action="store_true",
        help="measure the heart rate on the lensed frames (needs --privacy other than off)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        print("vitaledge demo: error: --seconds must be positive", file=sys.stderr)
        return 2
    if not 0 <= args.overlay_port <= 65535:
        print("vitaledge demo: error: --overlay-port must be 0 to 65535", file=sys.stderr)
        return 2
    if args.lensed_heart_rate and args.privacy == "off":
        lenses = ", ".join(p for p in PRESETS if p != "off")
        print(f"vitaledge demo: error: --lensed-heart-rate needs --privacy of {lenses}", file=sys.stderr)
        return 2
    # A demo leaves no state behind: its outbox is a real SQLite file, in a folder removed at the end; one that
    # a killed demo (kill -9) left behind is removed by the next demo.
    for orphan in remove_orphaned_state():
        print(f"vitaledge demo: removed {orphan}, left by a demo that was killed", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix=f"{_PREFIX}{os.getpid()}-") as state_dir:
        return _run(args, Path(state_dir) / "outbox.sqlite")


_PREFIX = "vitaledge-demo-"


def remove_orphaned_state(tmp_dir: Path | None = None) -> list[Path]:
    """Remove the state folders of demos that are no longer running (their pid, in the name, is gone).

    Args:
        tmp_dir: where demos make their folders (the system temporary folder by default).

    Returns:
        The folders removed.
    """
    removed = []
    for folder in (tmp_dir or Path(tempfile.gettempdir())).glob(f"{_PREFIX}*-*"):
        pid = folder.name.removeprefix(_PREFIX).split("-", 1)[0]
        if not pid.isdigit() or not folder.is_dir() or folder.is_symlink() or _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but another user's
        return True
    return True


def _run(args: argparse.Namespace, outbox_path: Path) -> int:
    from edge.config import load_config

    cfg = load_config(
        None,
        {
            "device_id": args.device_id,
            "sources": [
                {
                    "kind": "synthetic",
                    "name": "rig",
                    "seed": args.seed,
                    "realtime": not args.fast,
                    "duration_s": args.seconds,
                }
            ],
            "mqtt": {"url": args.mqtt},
            "outbox": {"path": str(outbox_path)},
            "overlay": {"port": _free_port() if args.overlay_port == 0 else args.overlay_port},
            "privacy": {"mode": args.privacy},
            "heart_rate": {"input": "lensed" if args.lensed_heart_rate else "raw"},
        },
    )
    # Printed before the broker and rig start, so the link is the first thing a user sees.
    overlay = f"http://{cfg.overlay.host}:{cfg.overlay.port}/"
    print(f"vitaledge demo — overlay {overlay} (device {cfg.device_id}, {args.seconds:g} s)", file=sys.stderr)
    summary = asyncio.run(_demo(cfg, status=not args.json, records_path=args.records))
    summary.update(_delivery(outbox_path, records=int(str(summary["records"]))))
    if args.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary)
    return 0


class _RecordsFile:
    """A sink writing each record's wire JSON, one a line (``make check-arm64`` compares two such files)."""

    name = "records-file"

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: Any = None

    async def __aenter__(self) -> _RecordsFile:
        self._file = self._path.open("w", encoding="utf-8")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._file.close()

    async def send(self, record: Any) -> None:
        from edge.publish.wire import json_dict_from_record

        self._file.write(json.dumps(json_dict_from_record(record)) + "\n")

    def observe(self, *args: object) -> None:
        """Records only."""


async def _demo(cfg: Any, *, status: bool, records_path: Path | None = None) -> dict[str, object]:
    from edge.app import run_app
    from edge.evaluation.rig_score import RigScore

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    score = RigScore(status=sys.stderr if status else None)
    sinks: list[Any] = [score] if records_path is None else [score, _RecordsFile(records_path)]
    stats = await run_app(cfg, stop=stop, extra_sinks=sinks)
    summary = score.summary().as_dict()
    summary["device_id"] = cfg.device_id
    summary["mqtt"] = cfg.mqtt.url or "embedded"
    summary["privacy"] = cfg.privacy.mode
    summary["heart_rate_input"] = cfg.heart_rate.input
    summary["errors"] = sum(stats.errors.values())
    summary["dropped"] = sum(s.dropped + s.fusion_dropped for s in stats.sources.values())
    summary["skipped"] = sum(s.fusion_skipped for s in stats.sources.values())
    # Frames fusion processed per second of the run, by kind: what a slow CPU left of the rig's 30 / 8.7 fps.
    fused: collections.Counter[str] = collections.Counter()
    for source_stats in stats.sources.values():
        fused.update(source_stats.fused_by_kind)
    seconds = max(float(str(summary["records"])), 1.0)  # one record per second of sample time
    summary["fused_fps"] = {kind: round(count / seconds, 2) for kind, count in sorted(fused.items())}
    for name, window in (("event_loop_lag", stats.event_loop_lag), ("fusion_latency", stats.fusion_latency)):
        summary[f"{name}_p50_ms"] = _ms(window.quantile(0.5))
        summary[f"{name}_p99_ms"] = _ms(window.quantile(0.99))
    return summary


def _ms(seconds: float) -> float | None:
    """Milliseconds, or None when nothing was measured (JSON has no NaN)."""
    return None if math.isnan(seconds) else seconds * 1000.0


def _free_port() -> int:
    """A port free now, chosen here so that the header can name it before the overlay listens."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _delivery(outbox_path: Path, *, records: int) -> dict[str, object]:
    """Records the broker acknowledged and records still queued, read from the demo's own outbox.

    Every record is stored in the outbox before it is published and removed at its PUBACK, so what
    is left there at the end was never acknowledged.
    """
    from edge.publish.outbox import Outbox

    outbox = Outbox(outbox_path)
    try:
        queued = outbox.depth
    finally:
        outbox.close()
    published = max(records - queued, 0)
    return {"published": published, "queued": queued, "broker_unreachable": records > 0 and published == 0}


def _delivery_lines(summary: dict[str, object]) -> str:
    lines = (
        f"  records made               {summary['records']}\n"
        f"  published (acknowledged)   {summary['published']}\n"
        f"  queued, not acknowledged   {summary['queued']}"
    )
    if summary["broker_unreachable"]:
        lines += f"\n  the broker at {summary['mqtt']} was unreachable: nothing reached it"
    return lines


def _print_summary(summary: dict[str, object]) -> None:
    def f(key: str, unit: str) -> str:
        value = summary[key]
        return "n/a" if value is None else f"{value:.2f} {unit}"

    rates = summary["fused_fps"]
    assert isinstance(rates, dict)
    names = {"VisibleFrame": "webcam", "ThermalFrame": "thermal", "SkinTemperature": "wristband"}
    fused_fps = ", ".join(f"{names.get(kind, kind)} {fps:g}" for kind, fps in rates.items()) or "none"

    print(
        f"\nvitaledge demo — device {summary['device_id']}, broker {summary['mqtt']}\n"
        f"{_delivery_lines(summary)}\n"
        f"  privacy lens               {summary['privacy']}"
        f"{' (heart rate measured through it)' if summary['heart_rate_input'] == 'lensed' else ''}\n"
        f"  heart rate MAE vs truth    {f('hr_mae_bpm', 'bpm')} over {summary['hr_records']} records\n"
        f"  face temperature MAE raw   {f('temp_mae_raw_c', '°C')} over {summary['temp_records']} records\n"
        f"  face temperature corrected {f('temp_mae_corrected_c', '°C')}\n"
        f"  dropped samples {summary['dropped']}, errors {summary['errors']}\n"
        f"  frames fused per second    {fused_fps}"
        f"\n  records degraded           {summary['degraded_records']}"
        " (published while the CPU could not fuse every frame)\n"
        f"  event-loop lag p50 / p99   {f('event_loop_lag_p50_ms', 'ms')} / {f('event_loop_lag_p99_ms', 'ms')}\n"
        f"  fusion latency p50 / p99   {f('fusion_latency_p50_ms', 'ms')} / {f('fusion_latency_p99_ms', 'ms')}"
    )
