"""The fusion loop: samples in (time order), one VitalsRecord out per second of sample time.

Pure and deterministic: the same samples in the same order give the same records, which is what
makes a recorded session replay bit-for-bit. Records are cut on sample time (``t_mono``), never
on a clock.
"""

from __future__ import annotations

import collections
import math
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fusion.samples import Sample, SkinTemperature, ThermalFrame, VisibleFrame
from fusion.sync import FramePairer
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

__all__ = ["FusionLoop", "HeartRatePath", "ThermalPath"]

_NS_PER_S = 1_000_000_000
# After a gap longer than this many periods (a suspended laptop, a stalled source) the record clock
# restarts instead of emitting a burst of records that describe nothing new.
_MAX_CATCH_UP_PERIODS = 5


class HeartRatePath(Protocol):
    """The heart-rate pipeline as the loop uses it (fusion.rppg.HeartRatePipeline)."""

    def push(self, image_bgr: npt.NDArray[np.uint8], t_mono: int, *, greyscale: bool = False) -> None: ...

    def reading(self) -> HeartRateReading: ...


class ThermalPath(Protocol):
    """The thermal pipeline as the loop uses it (fusion.thermal.ThermalPipeline)."""

    def push_skin(self, celsius: float, t_mono: int) -> None: ...

    def push_thermal(self, frame: ThermalFrame, paired_visible: npt.NDArray[np.uint8] | None) -> None: ...

    def reading(self) -> ThermalReading: ...


class FusionLoop:
    """Feeds each sample to its pipeline and cuts a record every ``period_ns`` of sample time.

    Args:
        device_id: written into every record.
        heart_rate: the heart-rate pipeline (webcam frames).
        thermal: the thermal pipeline (thermal frames, wristband readings).
        pair_tolerance_ns: thermal↔webcam pairing tolerance.
        period_ns: record period (1 s).
    """

    def __init__(
        self,
        *,
        device_id: str,
        heart_rate: HeartRatePath,
        thermal: ThermalPath,
        pair_tolerance_ns: int = 60_000_000,
        period_ns: int = _NS_PER_S,
    ) -> None:
        self.device_id = device_id
        self._heart_rate = heart_rate
        self._thermal = thermal
        self._pairer = FramePairer(pair_tolerance_ns)
        self._period_ns = period_ns
        self._next_record_ns: int | None = None
        self.rejected: collections.Counter[str] = collections.Counter()  # bad samples, by kind
        # Set by the caller when it thins the samples to keep up (a slow CPU); copied into each record cut.
        self.degraded = False

    @property
    def heart_rate(self) -> HeartRateReading:
        return self._heart_rate.reading()

    @property
    def thermal(self) -> ThermalReading:
        return self._thermal.reading()

    def push(self, sample: Sample) -> list[VitalsRecord]:
        """Feed one sample; returns the records whose period ended at or before it (usually none)."""
        records = self.advance(sample.t_mono, sample.t_wall)
        self.feed(sample)
        return records

    def feed(self, sample: Sample) -> None:
        """Hand a sample to its pipeline (call ``advance`` with its time first)."""
        match sample:
            case VisibleFrame():
                self._pairer.add_visible(sample.image, sample.t_mono)
                self._heart_rate.push(sample.image, sample.t_mono, greyscale=sample.greyscale)
            case ThermalFrame():
                self._thermal.push_thermal(sample, self._pairer.nearest(sample.t_mono))
            case SkinTemperature():
                if math.isfinite(sample.celsius):
                    self._thermal.push_skin(sample.celsius, sample.t_mono)
                else:
                    self.rejected["skin_temperature_not_finite"] += 1

    def advance(self, t_mono: int, t_wall: float) -> list[VitalsRecord]:
        """Cut the records whose period ended at or before ``t_mono``, from the state so far."""
        if self._next_record_ns is None:
            self._next_record_ns = t_mono + self._period_ns
            return []
        if t_mono - self._next_record_ns > _MAX_CATCH_UP_PERIODS * self._period_ns:
            self._next_record_ns = t_mono
        records = []
        while t_mono >= self._next_record_ns:
            end_ns = self._next_record_ns
            records.append(
                VitalsRecord(
                    device_id=self.device_id,
                    t_mono=end_ns,
                    t_wall=t_wall - (t_mono - end_ns) / _NS_PER_S,
                    heart_rate=self._heart_rate.reading(),
                    thermal=self._thermal.reading(),
                    degraded=self.degraded,
                )
            )
            self._next_record_ns += self._period_ns
        return records
