"""Replay of a session written by ``vitaledge record``: one source yielding every recorded sample.

Session layout (schema 1), all paths relative to the session folder:

- ``session.json``: ``{"format": "vitaledge-session", "schema": 1, "started_wall", "ended_wall",
  "video_codec": "ffv1"|"png", "sources": {...}, "counts": {...}, "dropped": {...}}``.
- ``samples.jsonl``: the manifest, one JSON object per sample, written as each sample's data is on
  disk: ``n`` (arrival order), ``type`` ("visible" | "thermal" | "skin"), ``source``, ``seq``,
  ``t_mono``, ``t_wall``, ``meta``, and where the data lives:
  visible: ``file`` (an FFV1 ``.mkv`` or a ``.png``), ``index`` (frame in that file), ``greyscale``;
  thermal: ``chunk`` (an ``.npz`` with ``celsius`` float32 N×H×W and, when recorded, ``raw`` uint16),
  ``index``, ``ffc``, ``planck`` (dict or null), ``visible`` (``{"file", "index"}`` of the sled's
  own image, or null), ``visible_greyscale``; skin: ``celsius``, ``site``, ``device``, ``csv`` (the E4-style export).
- Tuples inside ``meta`` are stored as ``{"__tuple__": [...]}`` so they come back as tuples.

Samples come back in ``(t_mono, n)`` order with their recorded ``t_mono``/``t_wall`` and ``meta``
(the simulated rig's ground truth survives), so fusion fed a replay computes what it computed live.
Pacing: ``speed`` 1.0 is real time, None as fast as the consumer takes them. A missing file or
a damaged manifest line is a ``DecodeError``: counted, skipped.
"""

from __future__ import annotations

import asyncio
import collections
import json
import zipfile
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from drivers.base import QueueSource
from fusion.errors import DecodeError, SourceError, SourceUnavailableError, UnavailableReason
from fusion.samples import PlanckConstants, Sample, SkinTemperature, ThermalFrame, VisibleFrame

__all__ = [
    "MANIFEST",
    "SCHEMA",
    "SESSION",
    "ReplaySource",
    "decode_meta",
    "encode_meta",
    "iter_session",
    "read_manifest",
]

SCHEMA = 1
SESSION = "session.json"
MANIFEST = "samples.jsonl"
# What a damaged or hostile session raises while one sample is loaded: counted and skipped, never fatal.
_DAMAGED = (OSError, ValueError, KeyError, TypeError, IndexError, OverflowError, EOFError, zipfile.BadZipFile)
_NS = 1_000_000_000


def encode_meta(value: object) -> Any:
    """``meta`` as JSON-ready values: tuples tagged, numpy scalars and arrays as Python values."""
    if isinstance(value, Mapping):
        return {str(k): encode_meta(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {"__tuple__": [encode_meta(v) for v in value]}
    if isinstance(value, list):
        return [encode_meta(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def decode_meta(value: Any) -> Any:
    """Inverse of ``encode_meta`` (tuples come back as tuples)."""
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(decode_meta(v) for v in value["__tuple__"])
        return {k: decode_meta(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_meta(v) for v in value]
    return value


def read_manifest(folder: Path, source: str = "replay") -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """Read a session's header and manifest.

    Args:
        folder: the session folder.
        source: name carried by the errors.

    Returns:
        The header, the entries sorted by ``(t_mono, n)``, and one message per unreadable line.

    Raises:
        SourceUnavailableError: no session there (ABSENT).
        SourceError: the header is not a vitaledge session of a known schema.
    """
    header_path = folder / SESSION
    try:
        header = json.loads(header_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SourceUnavailableError(
            source, f"{folder}: no recorded session ({SESSION} missing)", UnavailableReason.ABSENT
        ) from exc
    except (OSError, ValueError, RecursionError) as exc:
        raise SourceError(source, f"{header_path}: unreadable: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != "vitaledge-session" or header.get("schema") != SCHEMA:
        raise SourceError(source, f"{header_path}: not a vitaledge session of schema {SCHEMA}")
    entries: list[dict[str, Any]] = []
    bad: list[str] = []
    try:
        text = (folder / MANIFEST).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        text = ""
    for lineno, line in enumerate(text.splitlines(), start=1):
        try:
            entry = json.loads(line)
            if not isinstance(entry, dict) or entry.get("type") not in ("visible", "thermal", "skin"):
                raise ValueError("not a sample entry")
            for key in ("t_mono", "n"):
                if type(entry[key]) is not int:  # bool is an int subclass, and is refused
                    raise TypeError(f"{key} must be an integer, got {type(entry[key]).__name__}")
            entries.append(entry)
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            bad.append(f"{folder / MANIFEST}:{lineno}: {exc}")
    entries.sort(key=lambda e: (int(e["t_mono"]), int(e["n"])))
    return header, entries, bad


class _VideoReader:
    """Sequential frame access to one recorded FFV1 file (seeks back only when asked to)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.cap: cv2.VideoCapture | None = None
        self.next_index = 0

    def frame(self, index: int) -> npt.NDArray[np.uint8]:
        if self.cap is None or index < self.next_index:
            self.close()
            self.cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
            if not self.cap.isOpened():
                raise ValueError(f"{self.path}: cannot open")
            self.next_index = 0
        while True:
            ok, image = self.cap.read()
            if not ok or image is None:
                raise ValueError(f"{self.path}: no frame {index} (file ends at {self.next_index})")
            self.next_index += 1
            if self.next_index - 1 == index:
                return np.asarray(image, dtype=np.uint8)

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class _SessionFiles:
    """Loads frames and chunks for manifest entries; keeps one decoder per file, one chunk per source."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.videos: dict[str, _VideoReader] = {}
        self.chunks: dict[str, tuple[str, dict[str, npt.NDArray[Any]]]] = {}

    def inside(self, name: str) -> Path:
        """``folder / name``, refused (ValueError) unless it stays inside the session folder."""
        path = self.folder / name
        if not path.resolve().is_relative_to(self.folder.resolve()):
            raise ValueError(f"{name!r} is outside the session folder")
        return path

    def image(self, ref: Mapping[str, Any]) -> npt.NDArray[np.uint8]:
        name = str(ref["file"])
        path = self.inside(name)
        if name.endswith(".png"):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{path}: missing or unreadable")
            return np.asarray(image, dtype=np.uint8)
        reader = self.videos.setdefault(name, _VideoReader(path))
        return reader.frame(int(ref["index"]))

    def chunk(self, source: str, name: str) -> dict[str, npt.NDArray[Any]]:
        cached = self.chunks.get(source)
        if cached is None or cached[0] != name:
            with np.load(self.inside(name)) as npz:
                cached = (name, {key: npz[key] for key in npz.files})
            self.chunks[source] = cached
        return cached[1]

    def close(self) -> None:
        for reader in self.videos.values():
            reader.close()
        self.videos.clear()
        self.chunks.clear()


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    array.flags.writeable = False
    return array


def _load(files: _SessionFiles, e: Mapping[str, Any]) -> Sample:
    """Rebuild one sample from its manifest entry (blocking file I/O and decoding)."""
    common = {
        "t_mono": int(e["t_mono"]),
        "t_wall": float(e["t_wall"]),
        "source": str(e["source"]),
        "seq": int(e["seq"]),
        "meta": decode_meta(e.get("meta", {})),
    }
    if e["type"] == "skin":
        return SkinTemperature(celsius=float(e["celsius"]), site=str(e["site"]), device=str(e["device"]), **common)
    if e["type"] == "visible":
        return VisibleFrame(image=_frozen(files.image(e)), greyscale=bool(e.get("greyscale", False)), **common)
    chunk = files.chunk(str(e["source"]), str(e["chunk"]))
    index = int(e["index"])
    raw = chunk.get("raw")
    planck = e.get("planck")
    return ThermalFrame(
        celsius=_frozen(chunk["celsius"][index]),
        raw=None if raw is None else _frozen(raw[index]),
        visible=None if e.get("visible") is None else _frozen(files.image(e["visible"])),
        visible_greyscale=bool(e.get("visible_greyscale", False)),
        ffc=bool(e.get("ffc", False)),
        planck=None if planck is None else PlanckConstants(**planck),
        **common,
    )


def iter_session(folder: Path, errors: list[str] | None = None) -> Iterator[Sample]:
    """A recorded session as a plain generator (for evaluations), in ``(t_mono, n)`` order, unpaced.

    Args:
        folder: the session folder.
        errors: when given, one message per damaged line or missing sample is appended (else skipped silently).

    Raises:
        SourceUnavailableError: no session there.
        SourceError: not a vitaledge session of a known schema.
    """
    _, entries, bad = read_manifest(folder)
    if errors is not None:
        errors.extend(bad)
    files = _SessionFiles(folder)
    try:
        for entry in entries:
            try:
                sample = _load(files, entry)
            except _DAMAGED as exc:
                if errors is not None:
                    errors.append(f"sample n={entry.get('n')} ({entry.get('type')}): {exc}")
                continue
            yield sample
    finally:
        files.close()


class ReplaySource(QueueSource[Sample]):
    """Every sample of a recorded session, in ``t_mono`` order.

    Args:
        name: configured source name (the samples keep the names they were recorded under).
        path: the session folder.
        speed: 1.0 real time, 4.0 four times faster; None: as fast as the consumer takes them.
    """

    def __init__(self, name: str, *, path: Path, speed: float | None = 1.0) -> None:
        super().__init__(name, queue_size=1)
        if speed is not None and not speed > 0:
            raise ValueError(f"{name}: speed must be positive or None, got {speed}")
        self._path = Path(path)
        self._speed = speed
        self._entries: list[dict[str, Any]] = []
        self._files: _SessionFiles | None = None
        self.header: dict[str, Any] = {}
        self.errors: collections.deque[DecodeError] = collections.deque(maxlen=100)  # latest damaged samples

    async def _open(self) -> None:
        self.header, self._entries, bad = await asyncio.to_thread(read_manifest, self._path, self.name)
        for message in bad:
            self.errors.append(DecodeError(self.name, message, "manifest"))
            self._count_decode_error("manifest", message)
        self._files = _SessionFiles(self._path)

    async def _close(self) -> None:
        files, self._files = self._files, None
        if files is not None:
            files.close()

    def __len__(self) -> int:
        """Samples in the manifest (after ``__aenter__``)."""
        return len(self._entries)

    async def samples(self) -> AsyncIterator[Sample]:
        """Yield the recorded samples, paced by ``speed``; ends with the recording."""
        if not self._entered or self._files is None:
            raise RuntimeError(f"{self.name}: use 'async with' before iterating samples()")
        files = self._files
        loop = asyncio.get_running_loop()
        start_loop = loop.time()
        first_mono = int(self._entries[0]["t_mono"]) if self._entries else 0
        for entry in self._entries:
            try:
                sample = await asyncio.to_thread(_load, files, entry)
            except _DAMAGED as exc:
                message = f"sample n={entry.get('n')} ({entry.get('type')}): {exc}"
                self.errors.append(DecodeError(self.name, message, "missing"))
                self._count_decode_error("missing", message)
                continue
            if self._speed is not None:
                due = start_loop + (sample.t_mono - first_mono) / _NS / self._speed
                delay_s = due - loop.time()
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
            yield sample
