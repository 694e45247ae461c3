"""The whole app (``vitaledge run`` on the simulated rig) through a broker outage and its own SIGKILL.

What the first run had accepted but the broker never acknowledged is on disk when it dies; the second
run replays exactly those records on ``history``, once each, and its outbox drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_mqtt_outage import ROOT, Collector, PersistentMosquitto, wait_for
from tests.test_service import pipeline_missing

pytestmark = pytest.mark.slow


def start_app(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config)],
                                cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err)


def pending(outbox: Path) -> list[tuple[int, int]]:
    """(seq, t_mono_ns) of every record waiting in the outbox file, oldest first."""
    db = sqlite3.connect(outbox)
    try:
        rows = db.execute("SELECT payload FROM outbox ORDER BY id").fetchall()
    finally:
        db.close()
    return [(body["seq"], body["t_mono_ns"]) for body in (json.loads(p) for (p,) in rows)]


async def test_app_killed_mid_outage_loses_nothing(tmp_path: Path, topic_prefix: str) -> None:
    if reason := pipeline_missing():
        pytest.skip(reason)
    outbox = tmp_path / "outbox.sqlite"
    log = tmp_path / "app.log"
    with PersistentMosquitto() as broker:
        config = tmp_path / "vitaledge.yaml"
        config.write_text(yaml.safe_dump({
            "device_id": topic_prefix,
            "sources": [{"kind": "synthetic", "name": "rig"}],
            "mqtt": {"url": broker.url, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
            "outbox": {"path": str(outbox)},
            "overlay": {"enabled": False},
            "metrics": {"enabled": False},
            "homeassistant": {"enabled": False},
        }))
        collector = Collector(broker, topic_prefix)
        collecting = asyncio.create_task(collector.run())
        await asyncio.wait_for(collector.connected.wait(), 5)
        first = start_app(config, log)
        try:
            await wait_for(lambda: len(collector.seqs("vitals")) >= 2, 40, "live records from the first run")
            broker.kill()
            await asyncio.sleep(4.0)
            first.send_signal(signal.SIGKILL)
            first.wait()
            waiting = pending(outbox)
            assert len(waiting) >= 3, "records produced during the outage wait on disk"
            before = {(t, s) for t, s, _ in collector.received}
            received_before = len(collector.received)
            broker.start()
            second = start_app(config, log)
            try:
                await wait_for(lambda: len(collector.seqs("history")) >= len(waiting), 30, "the replay")
                await wait_for(
                    lambda: sum(t == "vitals" for t, _, _ in collector.received[received_before:]) >= 3,
                    30, "live records from the second run",
                )
            finally:
                second.send_signal(signal.SIGTERM)
                assert second.wait(timeout=20) == 0
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        collecting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collecting
    history = collector.seqs("history")
    assert history == [seq for seq, _ in waiting], "exactly the waiting records, once each, oldest first"
    first_run_vitals = sorted(seq for topic, seq in before if topic == "vitals")
    assert sorted(first_run_vitals + history) == list(range(len(first_run_vitals) + len(history))), (
        "the first run's records: live ones plus replayed ones, no gap, no duplicate"
    )
    second_run_vitals = [seq for topic, seq, _ in collector.received[received_before:] if topic == "vitals"]
    assert second_run_vitals[:3] == [waiting[-1][0] + 1 + i for i in range(3)], (
        "the restarted app continues the sequence where the killed one stopped"
    )
    assert pending(outbox) == [], "the second run drained the outbox"
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
