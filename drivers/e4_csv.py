"""An Empatica E4 export's TEMP.csv replayed as a wristband.

Format (Empatica's export): row 1 the session start as unix time (UTC), row 2 the sample rate in Hz
(4 for TEMP), then one value (°C) a line. Sample n is at ``start + n / rate``: that is its ``t_wall``;
its ``t_mono`` is the monotonic clock at ``__aenter__`` plus ``n / rate``, whatever the playback
speed, so fusion sees the recording's own timeline. A bad line, or a value outside the wristband's
plausible range, is a ``DecodeError`` naming file and line, counted and skipped (its time slot stays empty).
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import NamedTuple, TextIO

from drivers.base import QueueSource
from fusion.errors import DecodeError, SourceError, SourceUnavailableError, UnavailableReason
from fusion.samples import SkinTemperature, implausible_skin_c

__all__ = ["E4CsvHeader", "E4CsvSource", "read_e4_header"]


class E4CsvHeader(NamedTuple):
    """The two header rows of an E4 export file."""

    start_unix: float
    rate_hz: float


def _first_number(line: str) -> float:
    return float(line.split(",")[0])  # multi-column exports (ACC) repeat the value per column


def read_e4_header(stream: TextIO, source: str, path: Path) -> E4CsvHeader:
    """Read the two header rows.

    Args:
        stream: the open file, positioned at its start.
        source: the source name the error carries.
        path: the file, for messages.

    Returns:
        The start time and rate.

    Raises:
        SourceError: the header is missing or not two positive numbers.
    """
    rows = [stream.readline(), stream.readline()]
    try:
        start, rate = (_first_number(r) for r in rows)
    except ValueError as exc:
        got = f"{rows[0].strip()!r}, {rows[1].strip()!r}"
        raise SourceError(source, f"{path}: not an E4 export: header rows {got}") from exc
    if not (math.isfinite(start) and start > 0 and math.isfinite(rate) and rate > 0):
        raise SourceError(source, f"{path}: not an E4 export: start {start} and rate {rate} must be positive")
    return E4CsvHeader(start, rate)


class E4CsvSource(QueueSource[SkinTemperature]):
    """Replays an E4 TEMP.csv at real speed, faster, or as fast as the consumer takes samples.

    Args:
        name: configured source name.
        path: the TEMP.csv file.
        speed: 1.0 real time, 10.0 ten times faster; None: no pacing.
    """

    def __init__(self, name: str, *, path: Path, speed: float | None = 1.0) -> None:
        super().__init__(name, queue_size=1)
        if speed is not None and not speed > 0:
            raise ValueError(f"{name}: speed must be positive or None, got {speed}")
        self._path = Path(path)
        self._speed = speed
        self._file: TextIO | None = None
        self._header: E4CsvHeader | None = None
        self._t0_mono = 0
        self.errors: collections.deque[DecodeError] = collections.deque(maxlen=100)  # latest bad lines

    @property
    def header(self) -> E4CsvHeader | None:
        """Start time and rate, once opened."""
        return self._header

    async def _open(self) -> None:
        try:
            self._file = self._path.open(encoding="utf-8", errors="replace")
        except FileNotFoundError as exc:
            raise SourceUnavailableError(self.name, f"{self._path}: no such file", UnavailableReason.ABSENT) from exc
        except PermissionError as exc:
            reason = UnavailableReason.PERMISSION
            raise SourceUnavailableError(self.name, f"{self._path}: permission denied", reason) from exc
        self._header = read_e4_header(self._file, self.name, self._path)
        self._t0_mono = time.monotonic_ns()

    async def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    async def samples(self) -> AsyncIterator[SkinTemperature]:
        """Yield the file's samples in order, paced by ``speed``; ends at the end of the file."""
        if not self._entered or self._file is None or self._header is None:
            raise RuntimeError(f"{self.name}: use 'async with' before iterating samples()")
        stream, (start_unix, rate_hz) = self._file, self._header
        loop = asyncio.get_running_loop()
        t0_loop = loop.time()
        for n, line in enumerate(stream):
            lineno = n + 3
            text = line.strip()
            try:
                celsius = _first_number(text)
                if not math.isfinite(celsius):
                    raise ValueError("not finite")
            except ValueError:
                message = f"{self._path}:{lineno}: not a temperature: {text!r}"
                self.errors.append(DecodeError(self.name, message, "value"))
                self._count_decode_error("value", message)
                continue
            if (why := implausible_skin_c(celsius)) is not None:
                message = f"{self._path}:{lineno}: implausible: {why}"
                self.errors.append(DecodeError(self.name, message, "range"))
                self._count_decode_error("range", message)
                continue
            offset_s = n / rate_hz
            if self._speed is not None:
                delay_s = t0_loop + offset_s / self._speed - loop.time()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
            yield SkinTemperature(
                t_mono=self._t0_mono + round(offset_s * 1e9),
                t_wall=start_unix + offset_s,
                source=self.name,
                seq=self._next_seq(),
                celsius=celsius,
                device="e4-csv",
                meta={"line": lineno},
            )
