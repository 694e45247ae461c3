"""The running application: supervised sources → fusion loop → dispatcher → sinks.

Start order: embedded broker (when no URL is configured), sinks, then sources; stop in reverse.
A source that fails (or whose link drops: drivers raise ``SourceUnavailableError(DISCONNECTED)`` and
never reconnect by themselves) is reopened here, with the one backoff policy of ``edge.retry``, while
the others keep going; a source that ends (a file, a finite rig) is not reopened, and the app stops
when all have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, assert_never

from drivers.base import DemandAware, Source
from edge.build import build_backoff, build_fusion, build_source
from edge.config import (
    BleThermometerConfig,
    E4BleConfig,
    E4CsvConfig,
    E4ServerConfig,
    FlirJpegConfig,
    FlirOneConfig,
    PiCameraConfig,
    ReplayConfig,
    SourceConfig,
    SyntheticSourceConfig,
    UvcThermalConfig,
    VideoFileSourceConfig,
    VitalEdgeConfig,
    WebcamConfig,
)
from edge.fusion_worker import FusionWorker
from edge.looplag import watching_loop_lag
from edge.publish.dispatch import Sink
from edge.retry import Backoff
from edge.stats import AppStats
from fusion.errors import DecodeError, SourceUnavailableError

__all__ = ["run_app"]

_log = logging.getLogger(__name__)




async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _supervise(
    source: Source[Any],
    pipeline: FusionWorker,
    stats: AppStats,
    stop: asyncio.Event,
    backoff: Backoff | None = None,
    *,
    wait: Callable[[asyncio.Event, float], Awaitable[None]] = _wait,
) -> None:
    """Run one source until it ends or ``stop``; reopen it with backoff when it fails.

    This is the only place a source is retried: ``restarts`` counts every reopen, whether the open
    failed or an open link dropped. ``wait(stop, seconds)`` sleeps between attempts (tests inject one).
    """
    backoff = backoff or Backoff()
    source_stats = stats.source(source.name)
    if isinstance(source, DemandAware):  # it can skip making what fusion would thin out (a slow CPU)
        source.set_demand(pipeline.demand(source.name))
    while not stop.is_set():
        try:
            async with source:
                source_stats.connected = True
                backoff.reset()
                _log.info("%s: open", source.name)
                async for sample in source.samples():
                    await pipeline.submit(source.name, sample)
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
        await wait(stop, delay)


async def _cancel_on_stop(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    await stop.wait()
    for task in tasks:
        task.cancel()


def _is_live(cfg: SourceConfig) -> bool:
    """Whether a source cannot wait for fusion: a device, or a file or rig paced by the clock.

    Live samples are dropped (oldest first, counted) when fusion falls behind; the others (a replay,
    a file read as fast as it is taken) wait, so a finite run fuses every sample it has.
    """
    match cfg:
        case SyntheticSourceConfig() | VideoFileSourceConfig():
            return cfg.realtime
        case ReplayConfig() | E4CsvConfig() | FlirJpegConfig():
            return False  # recordings: back-pressure keeps every sample, as a replay must be bit-for-bit
        case (
            FlirOneConfig() | UvcThermalConfig() | E4BleConfig() | BleThermometerConfig() | E4ServerConfig()
            | WebcamConfig() | PiCameraConfig()
        ):
            return True
        case _:
            assert_never(cfg)


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
    sources = [(build_source(source_cfg), build_backoff(source_cfg)) for source_cfg in cfg.sources]
    async with contextlib.AsyncExitStack() as stack:
        mqtt_url = cfg.mqtt.url
        if mqtt_url is None:
            mqtt_url = (await stack.enter_async_context(EmbeddedBroker())).url
        dispatcher = build_dispatcher(cfg, stats, mqtt_url=mqtt_url, extra_sinks=extra_sinks)
        fusion = build_fusion(cfg)
        for sink in dispatcher.sinks:
            await stack.enter_async_context(sink)
        pipeline = FusionWorker(
            fusion, dispatcher, stats, live_sources=[c.name for c in cfg.sources if _is_live(c)]
        )
        await stack.enter_async_context(watching_loop_lag(stats.event_loop_lag))
        # Leaving the worker's block fuses what was accepted and sends every record before the sinks close.
        async with pipeline, asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(_supervise(source, pipeline, stats, stop, backoff), name=f"source:{source.name}")
                for source, backoff in sources
            ]
            stopper = group.create_task(_cancel_on_stop(stop, tasks), name="stopper")
            if tasks:
                await asyncio.wait(tasks)
            else:
                await stop.wait()
            stopper.cancel()
    return stats
