"""Skin temperature from Empatica's E4 streaming server (TCP, newline-terminated ASCII).

The server (Empatica's, on the PC paired with the wristband) takes commands such as
``device_connect <id>`` and ``device_subscribe tmp ON`` and answers ``R <command> ... OK`` or
``... ERR <reason>``; data arrive as ``E4_Temperature <unix_ts> <°C>``. The server's timestamp is
the sample's ``t_wall``; ``t_mono`` is the arrival time. A lost TCP connection ends ``samples()`` with
``SourceUnavailableError(DISCONNECTED)`` (after the lines already received); the supervisor reopens it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from drivers.base import QueueSource
from fusion.errors import SourceUnavailableError, UnavailableReason
from fusion.samples import SkinTemperature, implausible_skin_c

__all__ = ["E4ServerSource"]

_log = logging.getLogger(__name__)
_STREAM = "E4_Temperature"


class E4ServerSource(QueueSource[SkinTemperature]):
    """Subscribes to the ``tmp`` stream of an E4 streaming server; a lost connection ends ``samples()``.

    Args:
        name: configured source name.
        host: the server's address.
        port: its TCP port (Empatica's default 28000).
        device_id: send ``device_connect <id>`` first; None: the server is set to connect by itself.
        reply_timeout_s: how long to wait for the server's answer to a command.
        queue_size: samples buffered for a slow consumer before the oldest is dropped.
    """

    def __init__(
        self,
        name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 28000,
        device_id: str | None = None,
        reply_timeout_s: float = 5.0,
        queue_size: int = 64,
    ) -> None:
        super().__init__(name, queue_size=queue_size)
        self._host, self._port, self._device_id = host, port, device_id
        self._reply_timeout_s = reply_timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def _open(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-e4-server")

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._drop()

    async def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _connect(self) -> None:
        where = f"E4 server {self._host}:{self._port}"
        try:
            async with asyncio.timeout(self._reply_timeout_s):
                self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        except OSError as exc:  # refused, unreachable, timed out
            raise SourceUnavailableError(self.name, f"{where}: {exc!r}", UnavailableReason.ABSENT) from exc
        try:
            if self._device_id is not None:
                await self._command(f"device_connect {self._device_id}", "device_connect")
            await self._command("device_subscribe tmp ON", "device_subscribe tmp")
        except (OSError, EOFError) as exc:
            await self._drop()
            raise SourceUnavailableError(self.name, f"{where}: {exc}", UnavailableReason.ABSENT) from exc
        except SourceUnavailableError:
            await self._drop()
            raise
        _log.info("%s: subscribed to %s", self.name, where)

    async def _command(self, command: str, reply_prefix: str) -> None:
        """Send one command and wait for its ``R`` reply, handling data lines that come first."""
        assert self._reader is not None and self._writer is not None
        self._writer.write(command.encode("ascii") + b"\r\n")
        await self._writer.drain()
        async with asyncio.timeout(self._reply_timeout_s):
            while True:
                line = await self._readline()
                if line.startswith(f"R {reply_prefix}"):
                    break
                self._handle(line)
        if "ERR" in line.split():
            raise SourceUnavailableError(self.name, f"E4 server refused {command!r}: {line}", UnavailableReason.BUSY)

    async def _readline(self) -> str:
        assert self._reader is not None
        raw = await self._reader.readline()
        if not raw:
            raise EOFError("connection closed by the server")
        return raw.decode("utf-8", errors="replace").strip()

    def _handle(self, line: str) -> None:
        t_mono, now = time.monotonic_ns(), time.time()
        fields = line.split()
        if not fields or fields[0] != _STREAM:
            if line.startswith("R ") and "connection lost" in line:
                _log.warning("%s: E4 server reports: %s", self.name, line)
            return
        try:
            if len(fields) != 3:
                raise ValueError("expected 3 fields")
            t_wall, celsius = float(fields[1]), float(fields[2])
            if not (math.isfinite(t_wall) and math.isfinite(celsius)):
                raise ValueError("not finite")
        except ValueError as exc:
            self._count_decode_error("line", f"bad E4 server line {line!r}: {exc}")
            return
        if (why := implausible_skin_c(celsius)) is not None:
            self._count_decode_error("range", f"implausible E4 server reading {line!r}: {why}")
            return
        self._offer(
            SkinTemperature(
                t_mono=t_mono,
                t_wall=t_wall,
                source=self.name,
                seq=self._next_seq(),
                celsius=celsius,
                device=self._device_id or "e4-server",
                meta={"arrival_wall": now},
            )
        )

    async def _run(self) -> None:
        try:
            while True:
                self._handle(await self._readline())
        except (OSError, EOFError) as exc:
            _log.warning("%s: connection lost: %s", self.name, exc)
            await self._drop()
            self._fail(SourceUnavailableError(self.name, f"connection lost: {exc}", UnavailableReason.DISCONNECTED))
