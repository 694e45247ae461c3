"""systemd integration: readiness, status and a watchdog that is fed only while records flow.

The notification protocol is one datagram per message to the unix socket named by ``$NOTIFY_SOCKET``
(a leading ``@`` means the abstract namespace), written here directly: no libsystemd binding. With
``WatchdogSec=`` in the unit, systemd sets ``$WATCHDOG_USEC``; we check at half that interval and send
``WATCHDOG=1`` only if a record reached the sinks within ``stall_s``, so a stalled pipeline gets the
service restarted (``Restart=on-failure``) instead of sitting there alive and useless. Before the first
record, pings continue for ``startup_grace_s`` while the sources connect (a camera or wristband may take
longer than ``WatchdogSec`` to deliver), then stop as for a stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Self

from edge.config import ServiceConfig
from fusion.samples import Sample
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

__all__ = ["ServiceSink", "SystemdNotifier", "watchdog_interval_s"]

_log = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends sd_notify messages; does nothing when not run by systemd (no ``$NOTIFY_SOCKET``).

    Args:
        address: the socket path; None reads ``$NOTIFY_SOCKET`` from ``env``.
        env: the environment to read.
    """

    def __init__(self, address: str | None = None, env: Mapping[str, str] = os.environ) -> None:
        address = address if address is not None else env.get("NOTIFY_SOCKET")
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, message: str) -> bool:
        """Send one message (``"KEY=value"`` lines); True if it went out. Never raises."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message.encode(), self.address)
        except OSError as exc:
            if not self._failed:  # once: systemd may simply have gone away at shutdown
                _log.warning("systemd: cannot notify %s: %s", self.address.replace("\0", "@"), exc.strerror or exc)
                self._failed = True
            return False
        return True

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(env: Mapping[str, str] = os.environ) -> float | None:
    """``WatchdogSec`` as systemd passed it (``$WATCHDOG_USEC``), or None when there is no watchdog for us."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid.isdigit() and int(pid) != os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        _log.warning("systemd: ignoring WATCHDOG_USEC=%r (not an integer)", usec)
        return None
    return value / 1e6 if value > 0 else None


class ServiceSink:
    """A Sink that tells systemd when the service is ready and whether records are flowing.

    Args:
        cfg: the ``service`` section (``stall_s``).
        notifier: where messages go; None builds one from the environment.
        env: the environment (``$WATCHDOG_USEC``).
        outbox_depth: reads the MQTT outbox depth for the status line, if there is one.
        clock: monotonic seconds; injectable for tests.
        sleep: waits between watchdog checks; injectable for tests (with ``clock``).
    """

    name = "systemd"

    def __init__(
        self,
        cfg: ServiceConfig,
        *,
        notifier: SystemdNotifier | None = None,
        env: Mapping[str, str] = os.environ,
        outbox_depth: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._stall_s = cfg.stall_s
        self._grace_s = cfg.startup_grace_s
        self._started_s: float | None = None
        self.notifier = notifier or SystemdNotifier(env=env)
        self.watchdog_s = watchdog_interval_s(env)
        self._outbox_depth = outbox_depth
        self._clock = clock
        self._sleep = sleep
        self._records = 0
        self._last_seq: int | None = None
        self._last_record_s: float | None = None
        self._task: asyncio.Task[None] | None = None
        self.pings = 0
        self.stalled = False

    async def __aenter__(self) -> Self:
        self._started_s = self._clock()
        self.notifier.notify("READY=1\nSTATUS=running; waiting for the first record")
        if self.watchdog_s is not None and self.notifier.enabled:
            self._task = asyncio.create_task(self._watchdog(self.watchdog_s / 2), name="systemd-watchdog")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.notifier.notify("STOPPING=1\nSTATUS=stopping")
        self.notifier.close()

    async def send(self, record: VitalsRecord) -> None:
        """Note that a record flowed (no I/O)."""
        self._records += 1
        self._last_seq = record.seq
        self._last_record_s = self._clock()

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        """Samples alone do not count as flowing: only records do."""

    def flowing(self) -> bool:
        """A record reached the sinks within ``stall_s``."""
        return self._last_record_s is not None and self._clock() - self._last_record_s <= self._stall_s

    def _starting(self) -> bool:
        """No record yet, and still within the start-up grace: the sources may be connecting."""
        if self._last_record_s is not None or self._started_s is None or self._grace_s == 0:
            return False  # grace 0: no pings before the first record, and nothing said about it
        if self._clock() - self._started_s <= self._grace_s:
            return True
        if not self.stalled:  # once, when the grace runs out
            self.stalled = True
            _log.warning("systemd: no record within %.0f s of start; withholding watchdog pings", self._grace_s)
            self.notifier.notify(f"STATUS=stalled: no record within {self._grace_s:.0f} s of start")
        return False

    def _status(self) -> str:
        depth = f", outbox {self._outbox_depth()}" if self._outbox_depth is not None else ""
        return f"STATUS=publishing; {self._records} records, last seq {self._last_seq}{depth}"

    async def _watchdog(self, period_s: float) -> None:
        while True:
            await self._sleep(period_s)
            if self._starting():
                if self.notifier.notify("WATCHDOG=1\nSTATUS=starting; waiting for the first record"):
                    self.pings += 1
            elif self.flowing():
                if self.stalled:
                    _log.info("systemd: records flow again; watchdog pings resume")
                self.stalled = False
                if self.notifier.notify(f"WATCHDOG=1\n{self._status()}"):
                    self.pings += 1
            elif self._last_record_s is not None and not self.stalled:
                self.stalled = True
                age_s = self._clock() - self._last_record_s
                _log.warning("systemd: no record for %.0f s; withholding watchdog pings", age_s)
                self.notifier.notify(f"STATUS=stalled: no record for {age_s:.0f} s")
