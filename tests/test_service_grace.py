"""The watchdog's start-up grace: pings while sources connect, bounded, then withheld as for a stall."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edge.config import ServiceConfig
from edge.service import ServiceSink
from tests.test_mqtt_outage import make_record
from tests.test_service import NotifySocket, notify_socket, pings

__all__ = ["notify_socket"]  # the fixture, shared with test_service


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # bounded by pytest's timeout, not by a timed assert
        await asyncio.sleep(0.02)


async def test_pings_during_start_up_grace_then_withholds_them(notify_socket: NotifySocket) -> None:
    now = [1000.0]
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "100000"}  # a check every 0.05 s
    sink = ServiceSink(ServiceConfig(stall_s=5, startup_grace_s=60), env=env, clock=lambda: now[0])
    async with sink:
        # A slow source: no record yet, but within the grace the service still says it is alive.
        await _until(lambda: pings(notify_socket.messages()) >= 2)
        assert all("STATUS=starting" in m for m in notify_socket.messages() if "WATCHDOG=1" in m)
        now[0] += 61  # the grace is over and still no record: withhold pings so systemd restarts us
        await _until(lambda: any("no record within 60 s of start" in m for m in notify_socket.messages()))
        assert sink.stalled
        await asyncio.sleep(0.2)  # several checks pass with no record
        after_grace = len(notify_socket.messages())
        await sink.send(make_record("svc", 0))
        await _until(lambda: any("STATUS=publishing" in m for m in notify_socket.messages()))
    later = notify_socket.messages()[after_grace:]
    assert [m for m in notify_socket.messages()[:after_grace] if "WATCHDOG=1" in m][-1].count("starting") == 1
    assert not any("WATCHDOG=1" in m and "starting" in m for m in later)


async def test_a_record_ends_the_grace(notify_socket: NotifySocket) -> None:
    now = [0.0]
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "100000"}
    sink = ServiceSink(ServiceConfig(stall_s=5, startup_grace_s=60), env=env, clock=lambda: now[0])
    async with sink:
        await sink.send(make_record("svc", 0))
        await _until(lambda: any("STATUS=publishing" in m for m in notify_socket.messages()))
        now[0] += 10  # past stall_s, inside the grace: a started pipeline that stalls is not "starting"
        await _until(lambda: any(m.startswith("STATUS=stalled: no record for 10 s") for m in notify_socket.messages()))
    assert not any("STATUS=starting" in m for m in notify_socket.messages())
