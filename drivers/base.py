"""Shared plumbing for sources: lifecycle, a bounded drop-oldest queue, and thread hand-off."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Generic, Protocol, Self, TypeVar, runtime_checkable

from fusion.samples import SkinTemperature, ThermalFrame, VisibleFrame

__all__ = ["Demand", "DemandAware", "QueueSource", "Source"]

S = TypeVar("S", bound=VisibleFrame | ThermalFrame | SkinTemperature)
S_co = TypeVar("S_co", bound=VisibleFrame | ThermalFrame | SkinTemperature, covariant=True)
_log = logging.getLogger(__name__)


class Source(Protocol[S_co]):
    """A device or file that yields typed samples.

    Usage: ``async with src: async for s in src.samples(): ...``. A source may yield one sample type or
    several (the simulated rig and a replayed session yield all three, in ``t_mono`` order). Reusable,
    not reentrant; a failed
    ``__aenter__`` leaves it ready to retry and ``__aexit__`` is safe after a failed enter or twice.
    """

    name: str
    dropped: int  # samples discarded because the consumer was slow

    async def __aenter__(self) -> Self: ...  # opens the device or raises SourceUnavailableError

    async def __aexit__(self, *exc_info: object) -> None: ...

    def samples(self) -> AsyncIterator[S_co]: ...


# Asked before a sample is produced: would fusion take a sample of this type (``type(sample).__name__``) captured
# at this ``t_mono``? False means skip it unmade. It counts the sample as offered and decides, like a submit.
Demand = Callable[[str, int], bool]


@runtime_checkable
class DemandAware(Protocol):
    """A source that can skip making samples fusion would not take (a rendered rig, a decoder that can skip)."""

    def set_demand(self, demand: Demand | None) -> None: ...


class _Failed:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class QueueSource(Generic[S]):
    """Base for sources: subclasses implement ``_open`` / ``_close`` and feed samples with ``_offer``.

    The queue is bounded; when the consumer is slow the oldest sample is dropped and counted in
    ``dropped``. A reader thread hands samples over with ``_offer_threadsafe`` and reports a fatal
    condition (device unplugged) with ``_fail_threadsafe``; ``samples()`` then raises it.
    ``decode_errors`` counts bad frames/packets/lines by kind.
    """

    def __init__(self, name: str, *, queue_size: int = 8) -> None:
        self.name = name
        self.dropped = 0
        self.decode_errors: collections.Counter[str] = collections.Counter()
        self._queue_size = queue_size
        self._queue: asyncio.Queue[S | _Failed] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._entered = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None  # the reader thread, for sources that read in one
        self._seq = 0
        self._failure: BaseException | None = None

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError(f"{self.name}: source is already open (not reentrant)")
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue(maxsize=self._queue_size)
        self._failure = None
        self._stop.clear()
        try:
            await self._open()
        except BaseException:
            self._stop.set()
            await self._close()
            raise
        self._entered = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        if not self._entered:
            return
        self._entered = False
        await self._close()

    async def _open(self) -> None:
        """Open the device; raise SourceUnavailableError when it cannot be opened."""

    async def _close(self) -> None:
        """Release the device; must be safe after a failed or partial ``_open``."""

    def _start_reader(self, target: Callable[..., None], label: str, *args: object) -> None:
        """Start the reader thread (a daemon, named after the source); it must return once ``_stop`` is set."""
        self._thread = threading.Thread(target=target, args=args, name=f"{self.name}-{label}", daemon=True)
        self._thread.start()

    async def _join_reader(self) -> None:
        """Wait for the reader thread to finish, off the event loop (``_stop`` is set before ``_close``)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    def _offer(self, sample: S | _Failed) -> None:
        """Queue a sample (event-loop thread only), dropping the oldest when full."""
        queue = self._queue
        if queue is None:
            return
        if queue.full():
            queue.get_nowait()
            self.dropped += 1
        queue.put_nowait(sample)

    def _offer_threadsafe(self, sample: S) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._offer, sample)

    def _fail(self, exc: BaseException) -> None:
        """End ``samples()`` with ``exc`` after the samples already queued (event-loop thread only).

        A lost link is reported this way, as ``SourceUnavailableError(DISCONNECTED)``: the supervisor
        reopens the source; drivers do not reconnect by themselves. The failure never pushes a sample
        out of a full queue: it waits until the consumer has drained what was accepted.
        """
        self._failure = exc
        queue = self._queue
        if queue is not None and not queue.full():
            queue.put_nowait(_Failed(exc))  # wakes a consumer waiting on an empty queue

    def _fail_threadsafe(self, exc: BaseException) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._fail, exc)

    def _count_decode_error(self, kind: str, message: str) -> None:
        """Count one bad input; log the first of each kind (the supervisor rate-limits later logs)."""
        self.decode_errors[kind] += 1
        if self.decode_errors[kind] == 1:
            _log.warning("%s: %s (%s; further ones counted)", self.name, message, kind)

    async def samples(self) -> AsyncIterator[S]:
        """Yield samples until the source fails (raises) or is closed."""
        if not self._entered or self._queue is None:
            raise RuntimeError(f"{self.name}: use 'async with' before iterating samples()")
        while True:
            if self._failure is not None and self._queue.empty():
                failure, self._failure = self._failure, None
                raise failure
            item = await self._queue.get()
            if isinstance(item, _Failed):
                self._failure = None
                raise item.exc
            yield item
