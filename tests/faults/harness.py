"""The fault suite's parts: a publisher child, a subscriber that keeps boot id and seq, and the tally of
records accepted vs delivered that every scenario reports."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from tests.mosquitto import MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]


class Child:
    """The publisher child (tests/faults/publisher_child.py); ``await child.do("send 5")`` returns its counters."""

    def __init__(
        self, url: str, device_id: str, outbox: Path, *, memory_max: int = 3600, max_age_s: float = 7 * 86400.0
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.publisher_child", url, device_id, str(outbox), str(memory_max),
             str(max_age_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.state: dict[str, Any] = {}

    async def started(self) -> dict[str, Any]:
        return await self._answer("start")

    async def do(self, command: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return await self._answer(command)

    async def _answer(self, command: str) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 40)
        assert line, f"the publisher child died during {command!r}"
        self.state = json.loads(line)
        return self.state

    def accepted(self) -> tuple[str, range]:
        """This run's boot id and the seqs it accepted (sent to the sink)."""
        return str(self.state["boot_id"]), range(int(self.state["first_seq"]), int(self.state["next_seq"]))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class BootCollector:
    """A persistent-session subscriber that keeps (topic, boot_id, seq) of every record, across broker restarts."""

    def __init__(self, broker: MosquittoBroker, device_id: str) -> None:
        self._broker = broker
        self._device_id = device_id
        self.received: list[tuple[str, str, int]] = []
        self.connected = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self._broker.port, identifier=f"faults-{self._device_id}",
                                          clean_session=False) as client:
                    await client.subscribe(f"vitaledge/{self._device_id}/+", qos=1)
                    self.connected.set()
                    async for message in client.messages:
                        topic = str(message.topic).rsplit("/", 1)[1]
                        if topic in ("vitals", "history") and isinstance(message.payload, bytes):
                            body = json.loads(message.payload)
                            self.received.append((topic, str(body.get("boot_id", "")), int(body["seq"])))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.05)

    def count(self) -> int:
        return len(self.received)


@contextlib.asynccontextmanager
async def collecting(broker: MosquittoBroker, device_id: str) -> Any:
    collector = BootCollector(broker, device_id)
    task = asyncio.create_task(collector.run())
    try:
        await asyncio.wait_for(collector.connected.wait(), 5)
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Tally:
    """Records accepted vs delivered, by boot id; ``lost`` are accepted and never delivered."""

    scenario: str
    accepted: dict[str, set[int]] = field(default_factory=dict)
    delivered: dict[str, collections.Counter[int]] = field(default_factory=dict)
    counted_losses: int = 0  # what the publisher itself reported as dropped

    def accept(self, boot_id: str, seqs: range | set[int]) -> None:
        self.accepted.setdefault(boot_id, set()).update(seqs)

    def deliver(self, received: list[tuple[str, str, int]]) -> None:
        for _, boot, seq in received:
            self.delivered.setdefault(boot, collections.Counter())[seq] += 1

    @property
    def lost(self) -> int:
        return sum(len(seqs - set(self.delivered.get(boot, {}))) for boot, seqs in self.accepted.items())

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for counter in self.delivered.values() for n in counter.values() if n > 1)

    def line(self) -> str:
        boots = ", ".join(
            f"{boot[:8]}: {len(seqs)} accepted / {len(set(self.delivered.get(boot, {})) & seqs)} delivered"
            for boot, seqs in self.accepted.items()
        )
        return (f"{self.scenario}: accepted {sum(map(len, self.accepted.values()))}, delivered "
                f"{sum(len(c) for c in self.delivered.values())}, lost {self.lost} (counted by the publisher "
                f"{self.counted_losses}), duplicates {self.duplicates} [{boots}]")
