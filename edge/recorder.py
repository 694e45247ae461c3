"""Writes a session of samples to a folder, losslessly, in the layout ``drivers/replay.py`` reads.

Webcam frames (and the thermal sled's own visible images) go into FFV1 video in Matroska through
OpenCV's FFmpeg when the build supports it, else into PNG files: never a lossy codec, which would
erase the pulse. Thermal frames go into ``.npz`` chunks (°C float32 and raw counts when the device
gives them); wristband readings into the manifest and, on close, an E4-style CSV per source. Every
sample gets one manifest line (``samples.jsonl``) once its data is on disk, so a crash loses at most
the current thermal chunk. ``write`` is thread-safe; call it off the event loop (it encodes).

A shareable recording (``lensing`` given: ``vitaledge record --shareable``) stores only lensed images:
webcam frames and the sled's visible images through the privacy lens, thermal frames (°C and counts)
through its PSF, so nothing in the folder is a raw frame. It can still be replayed (rPPG on lensed input).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import re
import statistics
import threading
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TextIO

import cv2
import numpy as np
import numpy.typing as npt

from drivers.replay import MANIFEST, SCHEMA, SESSION, encode_meta
from fusion.errors import VitalEdgeError
from fusion.privacy import Lensing
from fusion.samples import Sample, SkinTemperature, ThermalFrame, VisibleFrame

__all__ = ["Recorder", "ffv1_available"]

_log = logging.getLogger(__name__)
VideoCodec = Literal["ffv1", "png"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "source"


def ffv1_available(folder: Path) -> bool:
    """Whether this OpenCV build writes FFV1 in Matroska, and reads it back bit-exact."""
    probe = folder / ".ffv1-probe.mkv"
    frames = [np.full((16, 16, 3), v, np.uint8) for v in (7, 200)]
    frames[1][3, 5] = (1, 2, 3)
    try:
        writer = cv2.VideoWriter(str(probe), cv2.CAP_FFMPEG, cv2.VideoWriter.fourcc(*"FFV1"), 30.0, (16, 16))
        if not writer.isOpened():
            return False
        for f in frames:
            writer.write(f)
        writer.release()
        cap = cv2.VideoCapture(str(probe), cv2.CAP_FFMPEG)
        back = [cap.read()[1] for _ in frames]
        cap.release()
        return all(b is not None and np.array_equal(a, b) for a, b in zip(frames, back, strict=True))
    finally:
        probe.unlink(missing_ok=True)


class _VideoTrack:
    """One stream of BGR images: FFV1 segments (a new one when the frame size changes) or PNG files."""

    def __init__(self, folder: Path, stem: str, codec: VideoCodec, fps: float) -> None:
        self.folder, self.stem, self.codec, self.fps = folder, stem, codec, fps
        self.writer: cv2.VideoWriter | None = None
        self.size: tuple[int, int] | None = None
        self.segment = -1
        self.index = 0
        self.png_count = 0

    def write(self, image: npt.NDArray[np.uint8]) -> dict[str, object]:
        if image.ndim == 2:
            image = np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
        if self.codec == "png":
            name = f"video/{self.stem}/{self.png_count:08d}.png"
            (self.folder / name).parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(self.folder / name), image):
                raise OSError(f"cannot write {name}")
            self.png_count += 1
            return {"file": name}
        size = (image.shape[1], image.shape[0])
        if self.writer is None or size != self.size:
            self.close()
            self.segment += 1
            self.size, self.index = size, 0
            path = self.folder / self.name
            path.parent.mkdir(parents=True, exist_ok=True)
            fourcc = cv2.VideoWriter.fourcc(*"FFV1")
            self.writer = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, fourcc, self.fps, size)
            if not self.writer.isOpened():
                self.writer = None
                _log.warning("%s: FFV1 writer refused %dx%d; falling back to PNG frames", self.stem, *size)
                self.codec = "png"
                return self.write(image)
        self.writer.write(np.ascontiguousarray(image))
        self.index += 1
        return {"file": self.name, "index": self.index - 1}

    @property
    def name(self) -> str:
        return f"video/{self.stem}_{self.segment:03d}.mkv"

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None


class _ThermalChunks:
    """Thermal frames of one source, buffered into ``.npz`` chunks of equal shape."""

    def __init__(self, folder: Path, stem: str, chunk_frames: int) -> None:
        self.folder, self.stem, self.chunk_frames = folder, stem, chunk_frames
        self.celsius: list[npt.NDArray[np.float32]] = []
        self.raw: list[npt.NDArray[np.uint16]] = []
        self.entries: list[dict[str, Any]] = []
        self.count = 0

    def add(self, frame: ThermalFrame, entry: dict[str, Any]) -> list[dict[str, Any]]:
        """Buffer one frame; returns the manifest entries made durable by a flush (if any)."""
        flushed: list[dict[str, Any]] = []
        has_raw = frame.raw is not None
        if self.celsius and (
            frame.celsius.shape != self.celsius[0].shape
            or has_raw != bool(self.raw)
            or len(self.celsius) >= self.chunk_frames
        ):
            flushed = self.flush()
        entry["chunk"] = f"thermal/{self.stem}_{self.count:06d}.npz"
        entry["index"] = len(self.celsius)
        self.celsius.append(np.asarray(frame.celsius, dtype=np.float32))
        if frame.raw is not None:
            self.raw.append(np.asarray(frame.raw, dtype=np.uint16))
        self.entries.append(entry)
        return flushed

    def flush(self) -> list[dict[str, Any]]:
        if not self.celsius:
            return []
        path = self.folder / f"thermal/{self.stem}_{self.count:06d}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, npt.NDArray[Any]] = {"celsius": np.stack(self.celsius)}
        if self.raw:
            arrays["raw"] = np.stack(self.raw)
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)  # type: ignore[arg-type]  # numpy's stub wants str keys
        entries, self.entries, self.celsius, self.raw = self.entries, [], [], []
        self.count += 1
        return entries


class Recorder:
    """Records samples from any number of sources into ``folder``.

    Args:
        folder: the session folder; created, must not already hold a session.
        video_codec: "ffv1" or "png"; None: FFV1 when this OpenCV build round-trips it exactly, else PNG.
        chunk_frames: thermal frames per ``.npz`` chunk.
        sources: configuration of the recorded sources, kept in ``session.json`` for reference.
        lensing: the privacy lens every stored image passes through (a shareable recording); None: raw.

    Raises:
        VitalEdgeError: the folder already holds a session, or cannot be created.
    """

    def __init__(
        self,
        folder: Path,
        *,
        video_codec: VideoCodec | None = None,
        chunk_frames: int = 32,
        sources: dict[str, Any] | None = None,
        lensing: Lensing | None = None,
    ) -> None:
        self.folder = Path(folder)
        self._lensing = lensing
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VitalEdgeError(f"{self.folder}: cannot create the session folder: {exc}") from exc
        if (self.folder / SESSION).exists():
            raise VitalEdgeError(f"{self.folder}: already holds a recorded session; choose an empty folder")
        self.video_codec: VideoCodec = video_codec or ("ffv1" if ffv1_available(self.folder) else "png")
        self._chunk_frames = chunk_frames
        self._sources = sources or {}
        self._lock = threading.Lock()
        self._videos: dict[tuple[str, str], _VideoTrack] = {}
        self._thermal: dict[str, _ThermalChunks] = {}
        self._skin: dict[str, list[tuple[float, float]]] = {}
        self._manifest: TextIO | None = None
        self._n = 0
        self.counts: Counter[str] = Counter()
        self.dropped: dict[str, int] = {}
        self._started_wall = time.time()
        self._write_header(ended=None)
        self._manifest = (self.folder / MANIFEST).open("a", encoding="utf-8")
        _log.info("recording to %s (video: %s)", self.folder, self.video_codec)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _write_header(self, ended: float | None) -> None:
        header = {
            "format": "vitaledge-session",
            "schema": SCHEMA,
            "started_wall": self._started_wall,
            "ended_wall": ended,
            "video_codec": self.video_codec,
            "sources": encode_meta(self._sources),
            "counts": dict(self.counts),
            "dropped": self.dropped,
            "privacy": "off" if self._lensing is None else self._lensing.name,
        }
        tmp = self.folder / (SESSION + ".tmp")
        tmp.write_text(json.dumps(header, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.folder / SESSION)

    def _emit(self, entries: list[dict[str, Any]]) -> None:
        assert self._manifest is not None
        for entry in entries:
            self._manifest.write(json.dumps(entry, allow_nan=True) + "\n")
        self._manifest.flush()

    def _video(self, source: str, track: str, fps: float) -> _VideoTrack:
        key = (source, track)
        if key not in self._videos:
            self._videos[key] = _VideoTrack(self.folder, f"{_safe(source)}_{track}", self.video_codec, fps)
        return self._videos[key]

    def write(self, sample: Sample) -> None:
        """Store one sample (thread-safe).

        Raises:
            VitalEdgeError: the recorder is closed.
            OSError: the disk refused a write.
        """
        with self._lock:
            if self._manifest is None:
                raise VitalEdgeError(f"{self.folder}: recorder is closed")
            entry: dict[str, Any] = {
                "n": self._n,
                "source": sample.source,
                "seq": sample.seq,
                "t_mono": sample.t_mono,
                "t_wall": sample.t_wall,
                "meta": encode_meta(sample.meta),
            }
            self._n += 1
            if self._lensing is not None:
                sample = _lensed(sample, self._lensing)
            match sample:
                case VisibleFrame():
                    fps = float(sample.meta.get("fps") or 30.0)  # type: ignore[arg-type]
                    entry.update(type="visible", greyscale=sample.greyscale)
                    entry.update(self._video(sample.source, "webcam", fps).write(sample.image))
                    self._emit([entry])
                case ThermalFrame():
                    entry.update(type="thermal", ffc=sample.ffc, visible=None)
                    entry["visible_greyscale"] = sample.visible_greyscale
                    entry["planck"] = None if sample.planck is None else dataclasses.asdict(sample.planck)
                    if sample.visible is not None:
                        entry["visible"] = self._video(sample.source, "sled", 8.7).write(sample.visible)
                    chunks = self._thermal.setdefault(
                        sample.source, _ThermalChunks(self.folder, _safe(sample.source), self._chunk_frames)
                    )
                    self._emit(chunks.add(sample, entry))
                case SkinTemperature():
                    csv = f"wristband/{_safe(sample.source)}_TEMP.csv"
                    entry.update(type="skin", celsius=sample.celsius, site=sample.site, device=sample.device, csv=csv)
                    self._skin.setdefault(sample.source, []).append((sample.t_wall, sample.celsius))
                    self._emit([entry])
            self.counts[entry["type"]] += 1

    def _write_e4_csvs(self) -> None:
        for source, rows in self._skin.items():
            path = self.folder / f"wristband/{_safe(source)}_TEMP.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            gaps = [b[0] - a[0] for a, b in itertools.pairwise(rows) if b[0] > a[0]]
            rate_hz = round(1.0 / statistics.median(gaps), 3) if gaps else 4.0
            lines = [f"{rows[0][0]:.6f}", f"{rate_hz:.6f}", *(repr(c) for _, c in rows)]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def close(self) -> None:
        """Flush chunks, finish videos, write the E4-style CSVs and the final header; safe twice."""
        with self._lock:
            if self._manifest is None:
                return
            for chunks in self._thermal.values():
                self._emit(chunks.flush())
            for track in self._videos.values():
                track.close()
            self._manifest.close()
            self._manifest = None
            self._write_e4_csvs()
            self._write_header(ended=time.time())
        _log.info("session %s: %s", self.folder, dict(self.counts))


def _lensed(sample: Sample, lensing: Lensing) -> Sample:
    """The sample as a privacy camera would have recorded it: every image through the lens."""
    match sample:
        case VisibleFrame():
            return dataclasses.replace(sample, image=lensing.apply(np.asarray(sample.image, dtype=np.uint8)))
        case ThermalFrame():
            visible = None if sample.visible is None else lensing.apply(np.asarray(sample.visible, dtype=np.uint8))
            celsius = lensing.apply_field(np.asarray(sample.celsius, dtype=np.float32))
            raw = None
            if sample.raw is not None:
                counts = lensing.apply_field(np.asarray(sample.raw, dtype=np.float32))
                raw = np.asarray(np.clip(np.round(counts), 0, 65535), dtype=np.uint16)
            return dataclasses.replace(sample, celsius=celsius, raw=raw, visible=visible)
        case _:
            return sample
