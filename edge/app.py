"""The running application: supervised sources → fusion loop → dispatcher → sinks.

Start order: embedded broker (when no URL is configured), sinks, then sources; stop in reverse.
A source that fails is reopened with capped exponential backoff while the others keep going; a
source that ends (a file, a finite rig) is not reopened, and the app stops when all have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from typing import Any

from drivers.base import Source
from edge.build import build_fusion, build_source
from edge.config import VitalEdgeConfig
from edge.publish.dispatch import Dispatcher, Sink
from edge.ratelimit import RateLimitedLog
from edge.stats import AppStats
from fusion.errors import DecodeError, SourceUnavailableError
from fusion.loop import FusionLoop
from fusion.samples import Sample
from fusion.vitals import VitalsRecord

__all__ = ["Backoff", "run_app"]

_log = logging.getLogger(__name__)


class Backoff:
    """Capped exponential backoff with ±25 % jitter, reset after a success."""

    def __init__(self, initial_s: float = 1.0, max_s: float = 30.0, rng: random.Random | None = None) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self._next_s = initial_s
        self._rng = rng or random.Random()

    def reset(self) -> None:
        self._next_s = self.initial_s

    def next_delay(self) -> float:
        delay = self._next_s * self._rng.uniform(0.75, 1.25)
        self._next_s = min(self._next_s * 2, self.max_s)
        return delay


class _Pipeline:
    """Pushes samples through fusion and hands records to the dispatcher task; counts failures."""

    def __init__(self, fusion: FusionLoop, dispatcher: Dispatcher, stats: AppStats) -> None:
        self._fusion = fusion
        self._dispatcher = dispatcher
        self._stats = stats
        self._records: asyncio.Queue[VitalsRecord | None] = asyncio.Queue()
        self._faults = RateLimitedLog(_log)

    def handle(self, source: str, sample: Sample) -> None:
        started = time.perf_counter()
        source_stats = self._stats.source(source)
        source_stats.samples += 1
        source_stats.samples_by_kind[type(sample).__name__] += 1
        source_stats.last_t_mono = sample.t_mono
        rejected_before = sum(self._fusion.rejected.values())
        # Records due before this sample are cut first, so a sample that breaks a pipeline cannot
        # take records already owed with it.
        records = self._fusion.advance(sample.t_mono, sample.t_wall)
        for record in records:
            self._stats.records += 1
            self._stats.last_record_monotonic_s = time.monotonic()
            self._records.put_nowait(record)
        try:
            self._fusion.feed(sample)
        except Exception as exc:  # a bug or a sample no check caught: count it, keep running
            kind = f"fusion_{type(sample).__name__}"
            self._stats.errors[kind] += 1
            self._faults.warn(kind, f"{source}: sample {sample.seq} not fused: {exc!r}", exc_info=True)
            return
        if sum(self._fusion.rejected.values()) > rejected_before:
            self._stats.errors["rejected_sample"] += 1
            rejected = dict(self._fusion.rejected)
            self._faults.warn("rejected_sample", f"{source}: sample {sample.seq} rejected: {rejected}")
        self._dispatcher.observe(sample, self._fusion.heart_rate, self._fusion.thermal)
        self._stats.fusion_latency_s = time.perf_counter() - started

    async def dispatch_records(self) -> None:
        """Send records to the sinks in order until ``close()``."""
        while (record := await self._records.get()) is not None:
            await self._dispatcher.send(record)

    def close(self) -> None:
        self._records.put_nowait(None)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _supervise(
    source: Source[Any], pipeline: _Pipeline, stats: AppStats, stop: asyncio.Event, backoff: Backoff | None = None
) -> None:
    """Run one source until it ends or ``stop``; reopen it with backoff when it fails."""
    backoff = backoff or Backoff()
    source_stats = stats.source(source.name)
    while not stop.is_set():
        try:
            async with source:
                source_stats.connected = True
                backoff.reset()
                _log.info("%s: open", source.name)
                async for sample in source.samples():
                    pipeline.handle(source.name, sample)
                    source_stats.dropped = source.dropped
            _log.info("%s: ended", source.name)
            return
        except SourceUnavailableError as exc:
            source_stats.errors[exc.reason.value] += 1
            message = f"{source.name}: unavailable ({exc.reason.value}): {exc}"
        except DecodeError as exc:  # drivers count and skip these; one escaping is treated as a failure
            source_stats.errors[exc.kind] += 1
            message = f"{source.name}: {exc}"
        except Exception as exc:
            source_stats.errors["crash"] += 1
            _log.exception("%s: source failed", source.name)
            message = f"{source.name}: failed: {exc!r}"
        finally:
            source_stats.connected = False
            source_stats.dropped = source.dropped
        delay = backoff.next_delay()
        source_stats.restarts += 1
        _log.warning("%s; retrying in %.1f s", message, delay)
        await _wait(stop, delay)


async def _cancel_on_stop(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    await stop.wait()
    for task in tasks:
        task.cancel()


async def run_app(
    cfg: VitalEdgeConfig,
    *,
    stop: asyncio.Event | None = None,
    extra_sinks: Sequence[Sink] = (),
    stats: AppStats | None = None,
) -> AppStats:
    """Run the configured pipeline until ``stop`` is set or every source has ended.

    Args:
        cfg: the validated configuration.
        stop: set it to stop; None means run until the sources end.
        extra_sinks: sinks added after the configured ones (the demo's summary, tests).
        stats: counters to fill (metrics and tests read them); a new one when None.

    Returns:
        The final counters.
    """
    from edge.publish.broker import EmbeddedBroker
    from edge.publish.sinks import build_dispatcher

    stop = stop or asyncio.Event()
    stats = stats or AppStats()
    sources = [build_source(source_cfg) for source_cfg in cfg.sources]
    async with contextlib.AsyncExitStack() as stack:
        mqtt_url = cfg.mqtt.url
        if mqtt_url is None:
            mqtt_url = (await stack.enter_async_context(EmbeddedBroker())).url
        dispatcher = build_dispatcher(cfg, stats, mqtt_url=mqtt_url, extra_sinks=extra_sinks)
        fusion = build_fusion(cfg)
        for sink in dispatcher.sinks:
            await stack.enter_async_context(sink)
        pipeline = _Pipeline(fusion, dispatcher, stats)
        dispatch_task = asyncio.create_task(pipeline.dispatch_records(), name="dispatch")
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(_supervise(source, pipeline, stats, stop), name=f"source:{source.name}")
                    for source in sources
                ]
                stopper = group.create_task(_cancel_on_stop(stop, tasks), name="stopper")
                if tasks:
                    await asyncio.wait(tasks)
                else:
                    await stop.wait()
                stopper.cancel()
        finally:
            pipeline.close()
            await dispatch_task
    return stats
