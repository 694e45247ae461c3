"""Scores published records against the simulated rig's ground truth (the demo's summary).

A sink like any other: ``observe`` reads the truth the rig puts in sample ``meta`` (fusion never
does), ``send`` compares each record with it.
"""

from __future__ import annotations

import collections
import math
import statistics
import sys
from dataclasses import dataclass
from typing import Self, TextIO

from edge.status_line import status_text
from fusion.samples import Sample, ThermalFrame, VisibleFrame
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

__all__ = ["RigScore", "ScoreSummary"]

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoreSummary:
    records: int
    hr_records: int  # records that carried a heart rate
    hr_mae_bpm: float | None
    temp_records: int  # records with both a raw and a corrected face temperature
    temp_mae_raw_c: float | None
    temp_mae_corrected_c: float | None
    settled_records: int = 0  # records after the first ``settle_s`` (the heart rate's warm-up)
    settled_hr_share: float | None = None  # share of those that carried a heart rate
    temp_share: float | None = None  # share of records with a temperature, from the first one that had it
    degraded_records: int = 0  # records made while frames were being thinned to keep up

    def as_dict(self) -> dict[str, object]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "records": self.records,
            "hr_records": self.hr_records,
            "hr_mae_bpm": r(self.hr_mae_bpm),
            "temp_records": self.temp_records,
            "temp_mae_raw_c": r(self.temp_mae_raw_c),
            "temp_mae_corrected_c": r(self.temp_mae_corrected_c),
            "settled_records": self.settled_records,
            "settled_hr_share": r(self.settled_hr_share),
            "temp_share": r(self.temp_share),
            "degraded_records": self.degraded_records,
        }


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


class RigScore:
    """Collects per-record errors against the rig's truth and prints a live status line.

    Args:
        hr_window_s: the true heart rate is averaged over this trailing window, the span the
            estimator's PSD describes.
        status: where the one-line live status goes; None for silence.
        settle_s: records this long after the first sample count as settled (``settled_hr_share``).
    """

    name = "rig-score"

    def __init__(self, hr_window_s: float = 10.0, status: TextIO | None = None, settle_s: float = 15.0) -> None:
        self._settle_ns = int(settle_s * _NS_PER_S)
        self._t0: int | None = None
        self._settled = 0
        self._settled_hr = 0
        self._temp = 0
        self._degraded = 0
        self._thermal_seen = False  # a record carried a temperature
        self._after_thermal = 0  # records since then
        self._hr_window_ns = int(hr_window_s * _NS_PER_S)
        self._true_hr: collections.deque[tuple[int, float]] = collections.deque()
        self._true_face_c: float | None = None
        self._status = status
        self._records = 0
        self._hr_errors: list[float] = []
        self._raw_errors: list[float] = []
        self._corrected_errors: list[float] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._status is not None and self._status.isatty():
            self._status.write("\n")
            self._status.flush()

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        if self._t0 is None:
            self._t0 = sample.t_mono
        if isinstance(sample, VisibleFrame) and "true_hr_bpm" in sample.meta:
            self._true_hr.append((sample.t_mono, float(sample.meta["true_hr_bpm"])))  # type: ignore[arg-type]  # meta values are object
            while self._true_hr and self._true_hr[0][0] < sample.t_mono - self._hr_window_ns:
                self._true_hr.popleft()
        elif isinstance(sample, ThermalFrame) and "true_face_c" in sample.meta and not sample.ffc:
            self._true_face_c = float(sample.meta["true_face_c"])  # type: ignore[arg-type]  # meta values are object

    async def send(self, record: VitalsRecord) -> None:
        self._records += 1
        hr, th = record.heart_rate, record.thermal
        self._degraded += record.degraded
        has_temp = th.face_corrected_c is not None and math.isfinite(th.face_corrected_c)
        # "Whenever a thermal frame exists": counted from the first record with a temperature, since the
        # records before the first thermal frame was fused cannot carry one.
        self._thermal_seen = self._thermal_seen or has_temp
        if self._thermal_seen:
            self._after_thermal += 1
            self._temp += has_temp
        if self._t0 is not None and record.t_mono - self._t0 > self._settle_ns:
            self._settled += 1
            self._settled_hr += hr.bpm is not None
        true_hr = statistics.fmean(v for _, v in self._true_hr) if self._true_hr else None
        if hr.bpm is not None and true_hr is not None:
            self._hr_errors.append(abs(hr.bpm - true_hr))
        truth = self._true_face_c
        raw, corrected = th.face_raw_c, th.face_corrected_c
        if truth is not None and raw is not None and corrected is not None and math.isfinite(raw + corrected):
            self._raw_errors.append(abs(raw - truth))
            self._corrected_errors.append(abs(corrected - truth))
        if self._status is not None:
            self._write_status(record, true_hr, truth)

    def _write_status(self, record: VitalsRecord, true_hr: float | None, true_face_c: float | None) -> None:
        line = status_text(record, (true_hr, true_face_c))
        if self._status is sys.stderr and self._status.isatty():
            self._status.write("\r\x1b[2K" + line)
        else:
            self._status.write(line + "\n")  # type: ignore[union-attr]  # checked by the caller
        self._status.flush()  # type: ignore[union-attr]  # checked by the caller

    def summary(self) -> ScoreSummary:
        return ScoreSummary(
            records=self._records,
            hr_records=len(self._hr_errors),
            hr_mae_bpm=_mean(self._hr_errors),
            temp_records=len(self._raw_errors),
            temp_mae_raw_c=_mean(self._raw_errors),
            temp_mae_corrected_c=_mean(self._corrected_errors),
            settled_records=self._settled,
            settled_hr_share=self._settled_hr / self._settled if self._settled else None,
            temp_share=self._temp / self._after_thermal if self._after_thermal else None,
            degraded_records=self._degraded,
        )
