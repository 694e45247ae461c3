"""E4 streaming-server source against a real asyncio TCP server on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.e4_server import E4ServerSource
from edge.build import build_source
from edge.config import load_config
from fusion.errors import ConfigError, SourceUnavailableError, UnavailableReason
from fusion.samples import SkinTemperature


class FakeE4Server:
    """Speaks the E4 streaming server's text protocol; the test scripts what it sends."""

    def __init__(self, *, refuse_device: bool = False) -> None:
        self.commands: list[str] = []
        self.clients: list[asyncio.StreamWriter] = []
        self.subscribed = asyncio.Event()
        self.refuse_device = refuse_device
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients.append(writer)
        while line := (await reader.readline()).decode().strip():
            self.commands.append(line)
            if line.startswith("device_connect"):
                writer.write(
                    b"R device_connect ERR the device is busy\n" if self.refuse_device else b"R device_connect OK\n"
                )
            elif line == "device_subscribe tmp ON":
                writer.write(b"E4_Temperature 1560279824.75 31.00\n")  # data may precede the reply
                writer.write(b"R device_subscribe tmp OK\n")
                self.subscribed.set()
            await writer.drain()

    async def send(self, text: str) -> None:
        writer = self.clients[-1]
        writer.write(text.encode())
        await writer.drain()

    async def drop_clients(self) -> None:
        for writer in self.clients:
            writer.close()
        self.subscribed.clear()

    async def stop(self) -> None:
        await self.drop_clients()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def server() -> AsyncIterator[FakeE4Server]:
    fake = FakeE4Server()
    await fake.start()
    yield fake
    await fake.stop()


def _source(port: int, device_id: str | None = None) -> E4ServerSource:
    return E4ServerSource("wristband", port=port, device_id=device_id, reply_timeout_s=1.0)


async def _next(it: AsyncIterator[SkinTemperature]) -> SkinTemperature:
    return await asyncio.wait_for(anext(it), 5.0)


async def test_subscribes_reads_and_reconnects(server: FakeE4Server) -> None:
    source = _source(server.port, device_id="9ff167")
    async with source:
        it = aiter(source.samples())
        first = await _next(it)  # the line sent before the subscription reply is not lost
        assert (first.celsius, first.t_wall, first.seq, first.device) == (31.0, 1560279824.75, 0, "9ff167")
        assert server.commands == ["device_connect 9ff167", "device_subscribe tmp ON"]

        await server.send("E4_Temperature 1560279825.00 31.25\r\nE4_Bvp 1560279825.0 -1.5\nE4_Temperature x 3\n")
        await server.send("E4_Temperature 1560279825.25\nE4_Temperature 1560279825.50 31.50\n")
        second, third = await _next(it), await _next(it)
        assert [(s.t_wall, s.celsius, s.seq) for s in (second, third)] == [
            (1560279825.0, 31.25, 1),
            (1560279825.5, 31.5, 2),
        ]
        assert source.decode_errors == {"line": 2}  # the other stream is ignored, not an error

        await server.send("E4_Temperature 1560279825.75 31.75\n")
        await server.drop_clients()  # what arrived before the drop is kept, then samples() says so
        assert (await _next(it)).celsius == 31.75
        with pytest.raises(SourceUnavailableError) as info:
            await _next(it)
        assert info.value.reason is UnavailableReason.DISCONNECTED
        assert source._writer is None
    async with source:  # the supervisor's reopen subscribes again
        it = aiter(source.samples())
        assert (await _next(it)).celsius == 31.0
        await server.send("E4_Temperature 1560279826.00 32.00\n")
        assert (await _next(it)).seq == 5
        assert len(server.clients) == 2


async def test_implausible_readings_are_counted_and_skipped(server: FakeE4Server) -> None:
    source = _source(server.port)
    async with source:
        it = aiter(source.samples())
        assert (await _next(it)).celsius == 31.0
        await server.send("E4_Temperature 1560279825.00 500\nE4_Temperature 1560279825.25 1e308\n")
        await server.send("E4_Temperature 1560279825.50 31.50\n")
        assert (await _next(it)).celsius == 31.5
        assert source.decode_errors == {"range": 2}


async def test_no_server_and_refusal_are_unavailable(server: FakeE4Server) -> None:
    await server.stop()
    with pytest.raises(SourceUnavailableError) as info:
        await _source(server.port).__aenter__()
    assert info.value.reason is UnavailableReason.ABSENT
    assert f"127.0.0.1:{server.port}" in str(info.value)

    busy = FakeE4Server(refuse_device=True)
    await busy.start()
    try:
        with pytest.raises(SourceUnavailableError, match="device is busy") as info:
            await _source(busy.port, device_id="9ff167").__aenter__()
        assert info.value.reason is UnavailableReason.BUSY
    finally:
        await busy.stop()


def test_config_and_build() -> None:
    cfg = load_config(None, {"sources": [{"kind": "e4-server", "host": "10.0.0.5", "device_id": "9ff167"}]})
    source = build_source(cfg.sources[0])
    assert isinstance(source, E4ServerSource)
    assert (source._host, source._port, source._device_id) == ("10.0.0.5", 28000, "9ff167")
    with pytest.raises(ConfigError, match="port"):
        load_config(None, {"sources": [{"kind": "e4-server", "port": 70000}]})
