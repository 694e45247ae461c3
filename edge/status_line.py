"""The one-line live status ``vitaledge run`` shows on a terminal, as the demo does (without the rig's truth)."""

from __future__ import annotations

from typing import Self, TextIO

from fusion.samples import Sample
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

__all__ = ["StatusLine", "status_sinks", "status_text"]


def status_text(record: VitalsRecord, truth: tuple[float | None, float | None] | None = None) -> str:
    """One record as one line; ``truth`` (heart rate, face °C) adds the simulated rig's true values."""

    def f(x: float | None, fmt: str) -> str:
        return "—" if x is None else format(x, fmt)

    hr, th = record.heart_rate, record.thermal
    true_hr = f", true {f(truth[0], '5.1f')}" if truth is not None else ""
    true_face = f"true {f(truth[1], '5.2f')}, " if truth is not None else ""
    line = (
        f"seq {record.seq:5d} | HR {f(hr.bpm, '5.1f')} bpm (c={hr.confidence:.2f}{true_hr})"
        f" | face {f(th.face_raw_c, '5.2f')} → {f(th.face_corrected_c, '5.2f')} °C"
        f" ({true_face}ref {th.reference or '—'})"
    )
    if record.flags:
        line += f" [{','.join(record.flags)}]"
    return line


class StatusLine:
    """A Sink that redraws one status line per record on a terminal.

    Args:
        stream: the terminal (stderr); the line is redrawn in place with ``\\r``.
    """

    name = "status-line"

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._drawn = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._drawn:  # leave the last line standing and the cursor on a fresh one
            self._stream.write("\n")
            self._stream.flush()

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        """Records alone are shown."""

    async def send(self, record: VitalsRecord) -> None:
        """Redraw the line for this record (no I/O beyond the terminal)."""
        self._stream.write("\r\x1b[2K" + status_text(record))
        self._stream.flush()
        self._drawn = True


def status_sinks(stream: TextIO) -> list[StatusLine]:
    """A status line when ``stream`` is a terminal; none into a log file or the journal."""
    return [StatusLine(stream)] if stream.isatty() else []
