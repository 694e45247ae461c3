"""Supervision: a failing source is reopened with backoff while the others keep publishing.

The supervisor's wait between attempts is injected: tests record the delays instead of sleeping them.
"""

from __future__ import annotations

import asyncio
import logging
import random

import numpy as np
import pytest

from drivers.base import QueueSource
from edge.app import _supervise
from edge.fusion_worker import FusionWorker
from edge.publish.dispatch import Dispatcher
from edge.ratelimit import RateLimitedLog
from edge.retry import Backoff
from edge.stats import AppStats
from fusion.errors import SourceUnavailableError, UnavailableReason
from fusion.loop import FusionLoop
from fusion.samples import SkinTemperature
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord
from tests.test_fusion_loop import _RecordingHeartRate, _RecordingThermal

MS = 1_000_000


class _Wristband(QueueSource[SkinTemperature]):
    """A wristband that is out of range for its first ``absent_opens`` opens, then drops after ``n`` readings."""

    def __init__(self, name: str, absent_opens: int, n: int, t0_ms: int = 0) -> None:
        super().__init__(name)
        self.opens = 0
        self._absent_opens = absent_opens
        self._n = n
        self._t_ms = t0_ms
        self._task: asyncio.Task[None] | None = None

    async def _open(self) -> None:
        self.opens += 1
        if self.opens <= self._absent_opens:
            raise SourceUnavailableError(self.name, "not in range", UnavailableReason.ABSENT)
        self._task = asyncio.create_task(self._feed())

    async def _feed(self) -> None:
        for _ in range(self._n):
            self._t_ms += 250
            self._offer(SkinTemperature(t_mono=self._t_ms * MS, t_wall=self._t_ms / 1e3, source=self.name,
                                        seq=self._next_seq(), celsius=33.0))
            await asyncio.sleep(0)
        self._offer_failure()

    def _offer_failure(self) -> None:
        self._fail_threadsafe(SourceUnavailableError(self.name, "link lost", UnavailableReason.DISCONNECTED))

    async def _close(self) -> None:
        if self._task is not None:
            self._task.cancel()


class _Collect:
    name = "collect"

    def __init__(self) -> None:
        self.records: list[VitalsRecord] = []

    async def __aenter__(self) -> _Collect:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    async def send(self, record: VitalsRecord) -> None:
        self.records.append(record)

    def observe(self, sample: object, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        return None


class _Waits:
    """Stands in for the supervisor's sleep: records each delay and stops after ``limit`` waits."""

    def __init__(self, limit: int) -> None:
        self.delays: list[float] = []
        self.limit = limit

    async def __call__(self, stop: asyncio.Event, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) >= self.limit:
            stop.set()
        await asyncio.sleep(0)


class _Low(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return a


async def test_failing_source_is_reopened_with_backoff_and_counted() -> None:
    stats, stop = AppStats(), asyncio.Event()
    fusion = FusionLoop(device_id="d", heart_rate=_RecordingHeartRate(), thermal=_RecordingThermal())
    flaky = _Wristband("flaky", absent_opens=2, n=3)
    waits = _Waits(limit=4)
    backoff = Backoff(initial_s=1.0, max_s=30.0, rng=_Low())
    async with FusionWorker(fusion, Dispatcher([]), stats) as pipeline:
        await asyncio.wait_for(_supervise(flaky, pipeline, stats, stop, backoff, wait=waits), 5)
    flaky_stats = stats.source("flaky")
    # absent, absent (backoff grows), then two sessions that each open (reset) and drop their link
    assert waits.delays == [0.75, 1.5, 0.75, 0.75]
    assert flaky.opens == 4 and flaky_stats.samples == 6
    assert (flaky_stats.errors["absent"], flaky_stats.errors["disconnected"]) == (2, 2)
    assert flaky_stats.restarts == 4 and not flaky_stats.connected


async def test_a_source_that_ends_is_not_reopened() -> None:
    class _Finite(_Wristband):
        def _offer_failure(self) -> None:
            self._stop.set()

        async def samples(self):  # type: ignore[no-untyped-def, override]  # ends after its readings
            async for sample in super().samples():
                yield sample
                if sample.seq == self._n - 1:
                    return

    stats, stop = AppStats(), asyncio.Event()
    fusion = FusionLoop(device_id="d", heart_rate=_RecordingHeartRate(), thermal=_RecordingThermal())
    finite = _Finite("file", absent_opens=1, n=3)
    waits = _Waits(limit=10)
    async with FusionWorker(fusion, Dispatcher([]), stats) as pipeline:
        await asyncio.wait_for(_supervise(finite, pipeline, stats, stop, wait=waits), 5)
    assert len(waits.delays) == 1 and stats.source("file").restarts == 1 and stats.source("file").samples == 3
    assert not stop.is_set()


def test_rate_limited_log_says_once_per_kind_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("t"), interval_s=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        assert log.warn("nan", "NaN temperature")
        assert not log.warn("nan", "NaN temperature")
        assert log.warn("crc", "bad CRC")
        now[0] = 61.0
        assert log.warn("nan", "NaN temperature")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "nan: NaN temperature",
        "crc: bad CRC",
        "nan: NaN temperature (1 more of this kind in the last 60 s)",
    ]


async def test_a_crashing_fusion_step_is_counted_not_fatal() -> None:
    class _Broken(_RecordingThermal):
        def push_skin(self, celsius: float, t_mono: int) -> None:
            raise RuntimeError("bug")

    stats = AppStats()
    collect = _Collect()
    fusion = FusionLoop(device_id="d", heart_rate=_RecordingHeartRate(), thermal=_Broken())
    async with FusionWorker(fusion, Dispatcher([collect]), stats) as pipeline:
        for t_ms in range(0, 2600, 250):
            sample = SkinTemperature(t_mono=t_ms * MS, t_wall=0.0, source="e4", seq=t_ms, celsius=33.0)
            await pipeline.submit("e4", sample)
    assert stats.errors["fusion_SkinTemperature"] == 11
    assert [r.seq for r in collect.records] == [0, 1]
    assert np.isfinite(stats.fusion_latency_s)
