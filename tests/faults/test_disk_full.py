"""The outbox cannot write (a full disk, stood in for by RLIMIT_FSIZE in a child publisher) while a real
Mosquitto is up, then down, then the disk comes back: accepted vs delivered, by seq.

Scaled down from the issue's 30 s: a few dozen records per phase, sent back to back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.mosquitto import mosquitto_binary
from tests.test_mqtt_outage import Collector, PersistentMosquitto, wait_for

pytestmark = pytest.mark.skipif(mosquitto_binary() is None, reason="mosquitto is not installed")

ROOT = Path(__file__).resolve().parents[2]


class Child:
    """The publisher child: ``await child.do("send 5")`` returns its counters afterwards."""

    def __init__(self, url: str, device_id: str, outbox: Path, memory_max: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.publisher_child", url, device_id, str(outbox), str(memory_max)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    async def do(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 20)
        assert line, f"the publisher child died during {command!r}"
        state: dict[str, Any] = json.loads(line)
        return state

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


async def test_full_disk_publishes_directly_then_holds_in_memory_then_recovers(
    tmp_path: Path, topic_prefix: str
) -> None:
    with PersistentMosquitto() as broker:
        collector = Collector(broker, topic_prefix)
        collecting = asyncio.create_task(collector.run())
        await asyncio.wait_for(collector.connected.wait(), 5)
        child = Child(broker.url, topic_prefix, tmp_path / "outbox.sqlite", memory_max=100)
        try:
            await child.do("send 5")
            assert (await child.do("drain"))["published"] == 5
            await child.do("disk full")
            up = await child.do("send 20")  # broker up: straight to it
            drained = await child.do("drain")
            assert up["outbox_write_failures"] == 20 and drained["direct"] == 20 and drained["memory"] == 0
            broker.stop()
            down = await child.do("send 20")  # broker down too: held in memory, bounded
            assert down["memory"] == 20 and down["memory_dropped"] == 0
            broker.start()
            assert (await child.do("drain"))["memory"] == 0
            await child.do("disk back")
            await child.do("send 5")  # the outbox writes again
            final = await child.do("drain")
            assert final["depth"] == 0 and final["outbox_write_failures"] == 40
            await wait_for(lambda: len(collector.received) >= 50, 10, "every record at the subscriber")
            final = await child.do("quit")
        finally:
            child.close()
            collecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collecting
    seqs = sorted(seq for topic, seq, _ in collector.received if topic in ("vitals", "history"))
    assert seqs == list(range(50)), "accepted 50, delivered 50: nothing lost, nothing twice"
    assert final["memory_dropped"] == 0


async def test_full_disk_and_no_broker_drops_only_beyond_the_memory_bound_and_counts_it(
    tmp_path: Path, topic_prefix: str
) -> None:
    with PersistentMosquitto() as broker:
        collector = Collector(broker, topic_prefix)
        collecting = asyncio.create_task(collector.run())
        await asyncio.wait_for(collector.connected.wait(), 5)
        child = Child(broker.url, topic_prefix, tmp_path / "outbox.sqlite", memory_max=8)
        try:
            await child.do("send 2")
            await child.do("drain")
            broker.stop()
            await child.do("disk full")
            held = await child.do("send 20")
            assert held["memory"] == 8 and held["memory_dropped"] == 12
            await child.do("disk back")  # space returns before the broker: memory moves to the outbox
            moved = await child.do("send 1")
            assert moved["memory"] == 0 and moved["depth"] == 9
            broker.start()
            final = await child.do("drain")
            assert final["depth"] == 0
            await wait_for(lambda: len(collector.received) >= 11, 10, "the kept records at the subscriber")
            await child.do("quit")
        finally:
            child.close()
            collecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collecting
    seqs = sorted(seq for topic, seq, _ in collector.received if topic in ("vitals", "history"))
    assert seqs == [0, 1, *range(14, 23)], "accepted 23, delivered 11, lost 12 = memory_dropped (the oldest)"
