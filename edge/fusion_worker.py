"""Fusion off the event loop: one worker thread fed by a bounded queue, records back in order.

The event loop only moves things: ``submit`` puts a sample in the queue, the worker runs
``FusionLoop.advance``/``feed`` (face detection, registration, k-means: milliseconds of CPU each), and
what it computed comes back with ``call_soon_threadsafe`` to be counted, shown (``Dispatcher.observe``)
and sent (``Dispatcher.send``) on the loop. BLE callbacks, MQTT keep-alive, the page and the watchdog
therefore never wait on a frame, and ``AppStats`` stays a loop-only object.

When fusion falls behind:

- a *live* source (a device, or the rig in real time) cannot wait. First, its frames are thinned evenly
  in sample time to what fusion can take (``edge.decimate``: webcam down to 10 fps, thermal down to 1 Hz,
  counted in ``SourceStats.fusion_skipped``; records then say ``degraded``). If the queue still fills,
  a queued sample is dropped and counted in ``SourceStats.fusion_dropped``: the oldest webcam frame
  first, then the oldest thermal frame, a wristband reading only when nothing else is queued, so the
  temperature is never starved by webcam frames;
- any other source (a replay, a file, ``demo --fast``) waits for room instead, so a finite run still
  fuses every sample and gives the same records as before, bit for bit;
- records are never dropped: the worker takes one of ``record_queue_size`` slots per record and waits
  for the dispatcher to free one (counted in ``AppStats.record_waits``). Its input queue then fills,
  and the rule above decides which samples give way — samples are the cheap thing to lose, a record
  is what subscribers count on.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Self

from edge.decimate import Decimator
from edge.publish.dispatch import Dispatcher
from edge.ratelimit import RateLimitedLog
from edge.stats import AppStats
from fusion.loop import FusionLoop
from fusion.samples import Sample, ThermalFrame, VisibleFrame
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

__all__ = ["FusionWorker"]

_log = logging.getLogger(__name__)
_POLL_S = 0.1  # how often a waiting worker looks whether it was abandoned
_NS_PER_S = 1_000_000_000


def _drop_rank(sample: Sample) -> int:
    """Which queued sample gives way first: the costliest to fuse and the most plentiful."""
    match sample:
        case VisibleFrame():
            return 0
        case ThermalFrame():
            return 1
        case _:
            return 2


@dataclass(slots=True)
class _Item:
    source: str
    sample: Sample
    live: bool
    degraded: bool = False  # frames were being thinned or dropped when it was accepted


@dataclass(slots=True)
class _Outcome:
    """What the worker computed for one sample, applied on the loop."""

    item: _Item
    records: list[VitalsRecord]
    heart_rate: HeartRateReading | None  # None when the sample broke its pipeline
    thermal: ThermalReading | None
    error: Exception | None
    rejected: dict[str, int] | None  # the loop's rejection counts when this sample added one
    latency_s: float
    record_waits: int


class FusionWorker:
    """Runs a FusionLoop in one worker thread and hands its records to the dispatcher, in order.

    Usage: ``async with FusionWorker(...) as worker: await worker.submit(name, sample)``; leaving the
    block fuses every sample already accepted and sends every record before it returns.

    Args:
        fusion: the fusion loop; only the worker thread touches it once started.
        dispatcher: gets each record (``send``) and each fused sample with its readings (``observe``).
        stats: the app's counters, updated on the loop.
        live_sources: names of sources that cannot wait (devices, real-time rigs); their samples are
            dropped oldest first when the queue is full. Others wait for room.
        queue_size: samples waiting for the worker, at most.
        record_queue_size: records produced but not yet sent, at most.
        clock: seconds, for the fusion latency and the busy fraction; injectable for tests.
        decimator: thins live frames when fusion cannot keep up; a default ``Decimator()`` when None.
    """

    def __init__(
        self,
        fusion: FusionLoop,
        dispatcher: Dispatcher,
        stats: AppStats,
        *,
        live_sources: Iterable[str] = (),
        queue_size: int = 16,
        record_queue_size: int = 32,
        clock: Callable[[], float] = time.perf_counter,
        decimator: Decimator | None = None,
    ) -> None:
        if queue_size < 1 or record_queue_size < 1:
            raise ValueError("queue sizes must be positive")
        self._fusion = fusion
        self._dispatcher = dispatcher
        self._stats = stats
        self._live = frozenset(live_sources)
        self._queue_size = queue_size
        self._clock = clock
        self._decimator = decimator if decimator is not None else Decimator()
        self._last_drop_t: int | None = None  # t_mono of the latest sample a full queue dropped (loop side)
        self._admitted: dict[tuple[str, str], int] = {}  # (source, type) -> t_mono a demand() call admitted
        self._faults = RateLimitedLog(_log)
        # Shared with the worker thread, guarded by _cond: the input queue and the flags below.
        self._cond = threading.Condition()
        self._queue: collections.deque[_Item] = collections.deque()
        self._closing = False  # no more samples; the worker exits once the queue is empty
        self._abandoned = False  # give up waiting for record slots (the loop is going away)
        self._room_wanted = False  # a non-live submit waits for room
        self._record_slots = threading.Semaphore(record_queue_size)
        # Loop side.
        self._records: asyncio.Queue[VitalsRecord | None] = asyncio.Queue(maxsize=record_queue_size + 1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room = asyncio.Event()
        self._finished = asyncio.Event()
        self._thread: threading.Thread | None = None
        self._dispatch_task: asyncio.Task[None] | None = None

    # --- lifecycle (loop) ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("fusion worker already started (not reusable)")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="fusion", daemon=True)
        self._thread.start()
        self._dispatch_task = asyncio.create_task(self._dispatch_records(), name="dispatch")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._thread is None:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        try:
            await self._finished.wait()  # every accepted sample fused, every outcome applied
        except BaseException:
            with self._cond:
                self._abandoned = True
                self._queue.clear()
                self._cond.notify_all()
            if self._dispatch_task is not None:
                self._dispatch_task.cancel()
            raise
        await asyncio.to_thread(self._thread.join)
        self._records.put_nowait(None)  # room kept for it: maxsize is one more than the record slots
        if self._dispatch_task is not None:
            await self._dispatch_task

    # --- samples in (loop) --------------------------------------------------------------------------

    async def submit(self, source: str, sample: Sample) -> None:
        """Queue one sample for fusion; waits for room unless ``source`` is live.

        Raises:
            RuntimeError: the worker is not running.
        """
        if self._thread is None or self._closing:
            raise RuntimeError("fusion worker is not running")
        source_stats = self._stats.source(source)
        source_stats.samples += 1
        source_stats.samples_by_kind[type(sample).__name__] += 1
        source_stats.last_t_mono = sample.t_mono
        live = source in self._live
        kind = type(sample).__name__
        admitted = self._admitted.get((source, kind)) == sample.t_mono  # by demand(), before it was made
        if live and not admitted and not self._decimator.admit(kind, sample.t_mono, source):
            source_stats.fusion_skipped += 1
            return
        recently_dropped = self._last_drop_t is not None and sample.t_mono - self._last_drop_t < _NS_PER_S
        # Only live samples are ever thinned or dropped; a replay's records are complete whatever the CPU.
        item = _Item(source, sample, live, degraded=live and (self._decimator.degraded or recently_dropped))
        while True:
            with self._cond:
                if len(self._queue) < self._queue_size:
                    self._queue.append(item)
                    self._stats.fusion_queue_depth = len(self._queue)
                    self._cond.notify()
                    return
                if item.live:
                    self._drop_oldest_live(item)
                    self._stats.fusion_queue_depth = len(self._queue)
                    return
                self._room_wanted = True
                self._room.clear()
            await self._room.wait()

    def demand(self, source: str) -> Callable[[str, int], bool]:
        """For a live source that can skip making a sample (``drivers.base.DemandAware``): would fusion take it?

        The answer is the decimator's, given once: a sample admitted here is not thinned again in ``submit``,
        one refused is counted in ``fusion_skipped`` (it is never made, so never submitted). A source calls it
        from its own thread between its submits (the rig renders in one), never concurrently with them.
        """

        def wants(kind: str, t_mono: int) -> bool:
            if source not in self._live or self._decimator.admit(kind, t_mono, source):
                self._admitted[(source, kind)] = t_mono
                return True
            self._stats.source(source).fusion_skipped += 1
            return False

        return wants

    def _drop_oldest_live(self, item: _Item) -> None:
        """Make room for a live sample (caller holds _cond): drop the oldest live one of the kind that gives
        way first (webcam, then thermal, then the rest), maybe ``item`` itself."""
        candidates = [queued for queued in self._queue if queued.live]
        candidates.append(item)
        victim = min(candidates, key=lambda queued: _drop_rank(queued.sample))  # min keeps the oldest of a rank
        self._last_drop_t = item.sample.t_mono
        if victim is not item:
            self._queue.remove(victim)
            self._queue.append(item)
            self._cond.notify()
        self._stats.source(victim.source).fusion_dropped += 1

    # --- the worker thread --------------------------------------------------------------------------

    def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if not self._queue or self._abandoned:
                        return
                    item = self._queue.popleft()
                    wake = self._room_wanted
                    self._room_wanted = False
                if wake:
                    loop.call_soon_threadsafe(self._room.set)
                outcome = self._fuse(item)
                if outcome is None:  # abandoned while waiting for a record slot
                    return
                loop.call_soon_threadsafe(self._apply, outcome)
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._finished.set)

    def _fuse(self, item: _Item) -> _Outcome | None:
        started = self._clock()
        fusion = self._fusion
        rejected_before = sum(fusion.rejected.values())
        fusion.degraded = item.degraded
        # Records due before this sample are cut first, so a sample that breaks a pipeline cannot
        # take records already owed with it.
        records = fusion.advance(item.sample.t_mono, item.sample.t_wall)
        error: Exception | None = None
        heart_rate: HeartRateReading | None = None
        thermal: ThermalReading | None = None
        rejected: dict[str, int] | None = None
        try:
            fusion.feed(item.sample)
            heart_rate, thermal = fusion.heart_rate, fusion.thermal
        except Exception as exc:  # a bug or a sample no check caught: counted on the loop, keep running
            error = exc
        if error is None and sum(fusion.rejected.values()) > rejected_before:
            rejected = dict(fusion.rejected)
        latency_s = self._clock() - started
        waits = 0
        for _ in records:
            if not self._record_slots.acquire(blocking=False):
                waits += 1
                while not self._record_slots.acquire(timeout=_POLL_S):
                    if self._abandoned:
                        return None
        return _Outcome(item, records, heart_rate, thermal, error, rejected, latency_s, waits)

    # --- results out (loop) -------------------------------------------------------------------------

    def _apply(self, outcome: _Outcome) -> None:
        stats, item = self._stats, outcome.item
        for record in outcome.records:
            stats.records += 1
            stats.last_record_monotonic_s = time.monotonic()
            self._records.put_nowait(record)  # a slot was taken for it, so there is room
        stats.record_waits += outcome.record_waits
        stats.fusion_latency_s = outcome.latency_s
        stats.fusion_latency.add(outcome.latency_s)
        with self._cond:
            stats.fusion_queue_depth = len(self._queue)
        self._decimator.observe(
            outcome.latency_s, self._clock(), backlog=stats.fusion_queue_depth > self._queue_size // 2
        )
        stats.degraded, stats.fusion_scale = self._decimator.degraded, self._decimator.scale
        source, sample = item.source, item.sample
        stats.source(source).fused_by_kind[type(sample).__name__] += 1
        if outcome.error is not None:
            kind = f"fusion_{type(sample).__name__}"
            stats.errors[kind] += 1
            try:  # re-raised here so the log carries its traceback (from the worker thread)
                raise outcome.error
            except Exception as exc:
                self._faults.warn(kind, f"{source}: sample {sample.seq} not fused: {exc!r}", exc_info=True)
            return
        if outcome.rejected is not None:
            stats.errors["rejected_sample"] += 1
            self._faults.warn("rejected_sample", f"{source}: sample {sample.seq} rejected: {outcome.rejected}")
        assert outcome.heart_rate is not None and outcome.thermal is not None
        self._dispatcher.observe(sample, outcome.heart_rate, outcome.thermal)

    async def _dispatch_records(self) -> None:
        """Send records to the sinks in order until the worker has finished."""
        while (record := await self._records.get()) is not None:
            try:
                await self._dispatcher.send(record)
            finally:
                self._record_slots.release()
