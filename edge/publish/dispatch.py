"""Fan-out from the fusion loop to sinks (MQTT, overlay, metrics); the dispatcher numbers records and routes them."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from typing import Protocol, Self

from fusion.samples import Sample
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

__all__ = ["Dispatcher", "Sink"]

_log = logging.getLogger(__name__)


class Sink(Protocol):
    """A consumer of records (and, optionally, of the live samples for display)."""

    name: str

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def send(self, record: VitalsRecord) -> None:
        """Accept one record; must not wait on the network (queue it, or write it to the outbox)."""
        ...

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        """See a sample as it enters fusion, with the current readings; cheap (keep the latest, no work)."""
        ...


class Dispatcher:
    """Numbers every record and routes it, and every sample, to every sink; a failing sink is logged, never
    fatal to the others.

    Args:
        sinks: the sinks, in start order.
        first_seq: ``seq`` of the first record (the outbox's next, so a restarted app continues its sequence).
        boot_id: this run's id, stamped on every record; unset: a random one (uuid4, 32 hex digits).
    """

    def __init__(self, sinks: list[Sink], *, first_seq: int = 0, boot_id: str | None = None) -> None:
        self.sinks = sinks
        self.errors = 0
        self.next_seq = first_seq
        self.boot_id = boot_id or uuid.uuid4().hex

    async def send(self, record: VitalsRecord) -> None:
        """Stamp the next ``seq`` (gapless, one per record) and the boot id on the record; hand it to every sink."""
        record = dataclasses.replace(record, seq=self.next_seq, boot_id=self.boot_id)
        self.next_seq += 1
        for sink in self.sinks:
            try:
                await sink.send(record)
            except Exception:
                self.errors += 1
                _log.exception("sink %s failed on record %d", sink.name, record.seq)

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        for sink in self.sinks:
            try:
                sink.observe(sample, heart_rate, thermal)
            except Exception:
                self.errors += 1
                _log.exception("sink %s failed to observe a %s sample", sink.name, type(sample).__name__)
