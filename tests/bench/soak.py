"""Soak benchmark: the simulated rig through the whole app (fusion, MQTT, outbox, overlay, metrics).

Runs ``run_app`` for N minutes at the rig's real-time rates with an MQTT subscriber counting records
(and their ``seq`` gaps), optionally an overlay viewer pulling the MJPEG stream and scraping /metrics,
and prints RSS after warm-up and at the end, drops per source, errors and records.

    .venv/bin/python tests/bench/soak.py --minutes 30 [--viewer] [--json]

Not a unit test: ``make bench`` runs it with the short default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402  (after the path set-up, so the script runs from anywhere)
import aiomqtt  # noqa: E402

from edge.app import run_app  # noqa: E402
from edge.config import VitalEdgeConfig  # noqa: E402
from edge.publish.outbox import Outbox  # noqa: E402
from edge.stats import AppStats  # noqa: E402
from tests.mosquitto import MosquittoBroker, free_port, mosquitto_binary  # noqa: E402


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def count_records(port: int, topic: str, seqs: list[int]) -> None:
    while True:
        try:
            async with aiomqtt.Client("127.0.0.1", port) as client:
                await client.subscribe(topic, qos=1)
                async for message in client.messages:
                    if isinstance(message.payload, bytes):
                        seqs.append(int(json.loads(message.payload)["seq"]))
        except aiomqtt.MqttError:
            await asyncio.sleep(0.5)


async def watch(url: str, stats: dict[str, int]) -> None:
    """One MJPEG viewer for the whole run, plus a /metrics scrape every 10 s."""
    async with aiohttp.ClientSession() as http:
        async def scrape() -> None:
            while True:
                async with http.get(f"{url}metrics") as resp:
                    await resp.read()
                    stats["scrapes"] += 1
                await asyncio.sleep(10)

        scraper = asyncio.create_task(scrape())
        try:
            async with http.get(f"{url}stream/visible.mjpg") as resp:
                async for chunk in resp.content.iter_any():
                    stats["mjpeg_bytes"] += len(chunk)
        finally:
            scraper.cancel()


async def soak(minutes: float, viewer: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="vitaledge-soak-"))
    port = free_port()
    broker = MosquittoBroker() if mosquitto_binary() else None
    if broker is not None:
        broker.start()
    try:
        cfg = VitalEdgeConfig(
            device_id="soak",
            sources=[{"kind": "synthetic", "name": "rig"}],  # type: ignore[list-item]  # validated by pydantic
            mqtt={"url": broker.url} if broker else {},  # type: ignore[arg-type]
            outbox={"path": str(work / "outbox.sqlite")},  # type: ignore[arg-type]
            overlay={"port": port},  # type: ignore[arg-type]
        )
        stats = AppStats()
        stop = asyncio.Event()
        seqs: list[int] = []
        watched = {"mjpeg_bytes": 0, "scrapes": 0}
        helpers: list[asyncio.Task[None]] = []
        if broker is not None:
            helpers.append(asyncio.create_task(count_records(broker.port, "vitaledge/soak/vitals", seqs)))
        app = asyncio.create_task(run_app(cfg, stop=stop, stats=stats))
        total_s = minutes * 60
        # Fusion's windows (10 s of video, 60 s of wristband) and the allocator settle over minutes: RSS
        # growth is measured from the end of the warm-up (5 min, or a fifth of a shorter run).
        warmup_s = min(300.0, total_s * 0.2)
        started = time.monotonic()
        timeline: list[tuple[float, float]] = [(0.0, rss_mib())]
        rss_after_warmup: float | None = None
        while (elapsed := time.monotonic() - started) < total_s and not app.done():
            await asyncio.sleep(min(10.0, total_s - elapsed))
            elapsed = time.monotonic() - started
            timeline.append((round(elapsed, 1), round(rss_mib(), 1)))
            if rss_after_warmup is None and elapsed >= warmup_s:
                rss_after_warmup = timeline[-1][1]
                if viewer:
                    helpers.append(asyncio.create_task(watch(f"http://127.0.0.1:{port}/", watched)))
            print(f"{elapsed:7.0f} s  rss {timeline[-1][1]:7.1f} MiB  records {stats.records:6d}  "
                  f"dropped {sum(s.dropped + s.fusion_dropped for s in stats.sources.values())}",
                  file=sys.stderr, flush=True)
        rss_end = rss_mib()
        stop.set()
        await app
        await asyncio.sleep(1.0)  # the last records reach the subscriber
        for task in helpers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    finally:
        if broker is not None:
            broker.stop()
    outbox = Outbox(work / "outbox.sqlite")
    depth = outbox.depth
    outbox.close()
    start_rss = rss_after_warmup if rss_after_warmup is not None else timeline[0][1]
    received = sorted(set(seqs))
    return {
        "minutes": minutes,
        "viewer": viewer,
        "records": stats.records,
        "records_received": len(seqs) if broker else None,
        "seq_gaps": (received[-1] - received[0] + 1 - len(received)) if received else None,
        "duplicates": len(seqs) - len(received),
        "rss_start_mib": round(start_rss, 1),
        "rss_end_mib": round(rss_end, 1),
        "rss_growth_pct": round(100 * (rss_end - start_rss) / start_rss, 2),
        "rss_warmup_s": warmup_s,
        "dropped": {name: s.dropped + s.fusion_dropped for name, s in stats.sources.items()},
        "samples": {name: dict(s.samples_by_kind) for name, s in stats.sources.items()},
        "restarts": {name: s.restarts for name, s in stats.sources.items()},
        "errors": dict(stats.errors) | {f"{n}:{k}": v for n, s in stats.sources.items() for k, v in s.errors.items()},
        "outbox_depth_end": depth,
        "mjpeg_mib": round(watched["mjpeg_bytes"] / 2**20, 1),
        "metrics_scrapes": watched["scrapes"],
        "timeline": timeline,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="run length (the issue's soak: 30)")
    parser.add_argument("--viewer", action="store_true", help="watch the MJPEG stream and scrape /metrics")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    args = parser.parse_args()
    result = asyncio.run(soak(args.minutes, args.viewer))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key != "timeline":
                print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
