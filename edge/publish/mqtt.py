"""The MQTT sink: records go to the outbox first, then to the broker; nothing accepted is lost.

Topics under ``vitaledge/<device_id>/``: ``vitals`` (records produced while connected, QoS from config),
``history`` (records that waited in the outbox through an outage, oldest first, throttled, marked
``"replayed": true``), ``status`` (retained ``online``; last will ``offline``; ``stopped`` on a clean exit).
A row leaves the outbox only when its publish completed (QoS 1: PUBACK received).

aiomqtt is reached only through ``_Connection``, the one place that catches ``MqttError`` and turns it
into ``PublishError``. The client is built inside the publisher task (aiomqtt binds it to the running
loop), one per connection attempt, so paho never resends a stale queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import sqlite3
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.reasoncodes import ReasonCode

from edge.config import MqttConfig
from edge.publish.homeassistant import Discovery
from edge.publish.outbox import Outbox
from edge.publish.wire import payload_from_record
from edge.ratelimit import RateLimitedLog
from edge.retry import Backoff
from fusion.errors import ConfigError, PublishError
from fusion.samples import Sample
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

__all__ = ["MqttSink", "PublisherStats", "broker_address"]

_log = logging.getLogger(__name__)

_BATCH = 50  # rows read from the outbox per query


@dataclass(slots=True)
class PublisherStats:
    """Counters for metrics and tests."""

    published: int = 0  # records acknowledged on `vitals`
    replayed: int = 0  # records acknowledged on `history`
    connects: int = 0  # successful connections (the first one included)
    connect_failures: int = 0
    disconnects: int = 0  # connections lost after they were up
    connected: bool = False
    outbox_write_failures: int = 0  # records the outbox could not store (disk full, I/O error)
    direct: int = 0  # of those, records published straight from memory (included in `published`)
    memory_dropped: int = 0  # of those, records lost: the memory queue overflowed or the app stopped first


def broker_address(url: str) -> tuple[str, int, bool]:
    """Split ``mqtt://host:port`` / ``mqtts://host:port`` into host, port and whether TLS is on.

    Raises:
        ConfigError: not an mqtt:// or mqtts:// URL with a host.
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ConfigError("mqtt.url: credentials in the URL are refused; use mqtt.username and mqtt.password")
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ConfigError(f"mqtt.url: expected mqtt://host[:port] or mqtts://host[:port], got {parts.scheme}://…")
    tls = parts.scheme == "mqtts"
    return parts.hostname, parts.port or (8883 if tls else 1883), tls


# CONNACK codes that retrying will not fix: MQTT 3.1.1 (4 bad user name or password, 5 not authorised) and
# MQTT 5 (134 bad user name or password, 135 not authorised, 138 banned, 140 bad authentication method).
_AUTH_REFUSED = {4, 5, 134, 135, 138, 140}


class _PermanentError(PublishError):
    """A failure that needs a person (credentials refused, a file missing), not a quick retry."""


def _permanent(exc: BaseException) -> str | None:
    """What is wrong, when ``exc`` is a failure that retrying soon will not fix; None for a transient one."""
    if isinstance(exc, MqttConnectError):
        rc = exc.rc
        code = rc.value if isinstance(rc, ReasonCode) else rc
        if code in _AUTH_REFUSED:
            return f"the broker refused the credentials ({exc}): check mqtt.username and mqtt.password"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the broker's TLS certificate was not accepted ({exc.verify_message}): check mqtt.tls_ca_file"
    return None


class _Connection:
    """The thin adapter over one connected aiomqtt client: the only code that sees ``MqttError``."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._client = client

    async def publish(self, topic: str, payload: bytes, *, qos: int, retain: bool = False) -> None:
        try:
            await self._client.publish(topic, payload, qos=qos, retain=retain)
        except aiomqtt.MqttError as exc:
            raise PublishError(f"publish to {topic} failed: {exc}") from exc

    async def subscribe(self, topic: str) -> None:
        try:
            await self._client.subscribe(topic, qos=1)
        except aiomqtt.MqttError as exc:
            raise PublishError(f"subscribe to {topic} failed: {exc}") from exc

    async def messages(self) -> AsyncIterator[tuple[str, bytes]]:
        try:
            async for message in self._client.messages:
                payload = message.payload if isinstance(message.payload, bytes) else b""
                yield str(message.topic), payload
        except aiomqtt.MqttError as exc:
            raise PublishError(f"connection lost: {exc}") from exc


class MqttSink:
    """Publishes every record it is sent, through the outbox, with reconnects and replay.

    Args:
        cfg: the ``mqtt`` section (credentials, TLS, QoS, reconnect bounds).
        url: the broker (``cfg.url`` or the embedded broker's).
        device_id: names the topics and, unless configured, the client id.
        outbox: where records wait for their PUBACK (opened by the caller, closed by this sink).
        replay_rate_hz: history replay rate.
        discovery: Home Assistant discovery to publish on connect and on HA's birth message.
        flush_s: on exit, how long to keep publishing records still waiting before saying ``stopped``.
        stale_s: at connect, records older than this are replayed on ``history`` rather than ``vitals``.
        memory_max_records: while the outbox cannot write, records held in memory until the broker takes
            them; the oldest beyond this are dropped and counted.
    """

    name = "mqtt"

    def __init__(
        self,
        cfg: MqttConfig,
        *,
        url: str,
        device_id: str,
        outbox: Outbox,
        replay_rate_hz: float = 50.0,
        discovery: Discovery | None = None,
        flush_s: float = 3.0,
        stale_s: float = 2.0,
        memory_max_records: int = 3600,
    ) -> None:
        self._cfg = cfg
        self._host, self._port, self._tls = broker_address(url)
        self.device_id = device_id
        self.base_topic = f"vitaledge/{device_id}"
        self.client_id = cfg.client_id or f"vitaledge-{device_id}"
        self.outbox = outbox
        self._replay_interval_s = 1.0 / replay_rate_hz
        self._discovery = discovery
        self._flush_s = flush_s
        self._stale_s = stale_s
        self.stats = PublisherStats()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._wake = asyncio.Event()
        self._boundary = 0  # rows up to this id are history for the current connection
        self._live_after = 0  # live rows up to this id are done
        # Records the outbox could not store, oldest first: published directly, moved back to the outbox
        # when it can write again, bounded (the oldest go first, counted).
        self._memory: deque[tuple[int, bytes]] = deque()
        self._memory_max = memory_max_records
        self._rate_log = RateLimitedLog(_log)

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next record should carry: past any this device may have handed out (never reused)."""
        return self.outbox.next_seq()

    # --- Sink protocol ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._closing.clear()
        _quiet_stale_socket_callbacks(asyncio.get_running_loop())
        self._task = asyncio.create_task(self._run(), name="mqtt-publisher")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._closing.set()
            self._wake.set()
            try:
                await asyncio.wait_for(task, timeout=self._flush_s + 2.0)
            except TimeoutError:
                _log.warning("mqtt: did not stop within %.0f s; records stay in the outbox", self._flush_s + 2)
            except Exception:  # the task's own failures are logged where they happen
                _log.exception("mqtt: publisher failed while stopping")
        with contextlib.suppress(sqlite3.Error):  # a last chance for what waited in memory
            while self._memory:
                self.outbox.put(*self._memory[0])
                self._memory.popleft()
        if self._memory:
            self.stats.memory_dropped += len(self._memory)
            _log.error("mqtt: %d records held in memory were never stored or published (outbox unwritable)",
                       len(self._memory))
            self._memory.clear()
        self.outbox.close()

    @property
    def memory_depth(self) -> int:
        """Records held in memory because the outbox could not store them."""
        return len(self._memory)

    async def send(self, record: VitalsRecord) -> None:
        """Store the record in the outbox (committed) and wake the publisher; never waits on the network.

        When the outbox cannot write, the record is held in memory (published directly while the broker is
        up; bounded while it is not) and moved to the outbox as soon as a write succeeds again.
        """
        payload = payload_from_record(record)
        try:
            while self._memory:  # recovery: what waited in memory goes first, in order
                self.outbox.put(*self._memory[0])
                self._memory.popleft()
            self.outbox.put(record.seq, payload)
        except sqlite3.Error as exc:
            self._hold(record.seq, payload, exc)
        self._wake.set()

    def _hold(self, seq: int, payload: bytes, exc: sqlite3.Error) -> None:
        self.stats.outbox_write_failures += 1
        self._memory.append((seq, payload))
        while len(self._memory) > self._memory_max:
            lost, _ = self._memory.popleft()
            self.stats.memory_dropped += 1
            self._rate_log.warn("outbox-memory-full", f"memory queue full ({self._memory_max}); dropped seq {lost}")
        self._rate_log.warn(
            "outbox-unwritable",
            f"cannot write to {self.outbox.path} ({exc}); "
            f"{'publishing directly' if self.stats.connected else 'holding records in memory'}, "
            f"{len(self._memory)} waiting, {self.stats.memory_dropped} dropped so far",
        )

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        """Samples are not published."""

    # --- connection loop -------------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        password: str | None = None
        if self._cfg.password is not None:
            password = self._cfg.password.get_secret_value()
        elif self._cfg.password_file is not None:
            password = _read_secret(self._cfg.password_file)
        tls_params = None
        if self._tls:
            for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
                path: Path | None = getattr(self._cfg, key)
                if path is not None and not path.is_file():
                    raise _PermanentError(f"mqtt.{key} {path}: file missing")
            cfg = self._cfg
            tls_params = aiomqtt.TLSParameters(
                ca_certs=str(cfg.tls_ca_file) if cfg.tls_ca_file else None,
                certfile=str(cfg.tls_cert_file) if cfg.tls_cert_file else None,
                keyfile=str(cfg.tls_key_file) if cfg.tls_key_file else None,
                cert_reqs=ssl.CERT_NONE if cfg.tls_insecure else ssl.CERT_REQUIRED,
            )
        return aiomqtt.Client(
            self._host,
            self._port,
            identifier=self.client_id,
            username=self._cfg.username,
            password=password,
            will=aiomqtt.Will(f"{self.base_topic}/status", b"offline", qos=1, retain=True),
            keepalive=self._cfg.keepalive_s,
            timeout=10.0,
            tls_params=tls_params,
            tls_insecure=self._cfg.tls_insecure if self._tls else None,
            logger=logging.getLogger("edge.publish.mqtt.client"),
        )

    async def _run(self) -> None:
        backoff = Backoff(self._cfg.reconnect_min_s, self._cfg.reconnect_max_s)  # the sources' policy too
        where = f"{self._host}:{self._port}"
        while not self._closing.is_set():
            connected = False
            try:
                client = self._client()
                try:
                    async with client:
                        connected = True
                        self.stats.connects += 1
                        self.stats.connected = True
                        backoff.reset()
                        _log.info("mqtt: connected to %s as %s", where, self.client_id)
                        await self._session(_Connection(client))
                except (aiomqtt.MqttError, ssl.SSLError) as exc:  # connect/disconnect (the adapter covers the rest)
                    if (what := _permanent(exc)) is not None:
                        raise _PermanentError(what) from exc
                    raise PublishError(str(exc)) from exc
                return  # closing: the session said `stopped`
            except _PermanentError as exc:
                backoff.exhaust()
                self.stats.connect_failures += 1
                wait_s = backoff.next_delay()
                self._rate_log.warn("mqtt-refused", f"{where}: {exc}; retrying every {wait_s:.0f} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), timeout=wait_s)
                continue
            except (PublishError, OSError) as exc:
                reason = str(exc)
            except Exception as exc:  # a bug: log it once with its traceback, keep trying
                _log.exception("mqtt: publisher error")
                reason = repr(exc)
            finally:
                if connected:
                    self.stats.connected = False
                    self.stats.disconnects += 1
            if not connected:
                self.stats.connect_failures += 1
            wait_s = backoff.next_delay()
            _log.warning(
                "mqtt: %s %s: %s; %d records in the outbox; retrying in %.1f s",
                "lost" if connected else "cannot reach", where, reason, self.outbox.depth, wait_s,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=wait_s)

    async def _session(self, conn: _Connection) -> None:
        # Records that waited longer than `stale_s` (an outage) or that an earlier run of the app left
        # behind (a restart) go to `history`; the rest are live.
        self._boundary = self._live_after = max(
            self.outbox.last_id_before(self.outbox.now() - self._stale_s), self.outbox.inherited_up_to_id
        )
        await conn.publish(f"{self.base_topic}/status", b"online", qos=1, retain=True)
        if self._discovery is not None:
            await conn.subscribe(self._discovery.ha_status_topic)
            await conn.publish(self._discovery.topic, self._discovery.payload, qos=1, retain=True)
        live = asyncio.create_task(self._publish_live(conn), name="mqtt-live")
        tasks = {live, asyncio.create_task(self._replay(conn), name="mqtt-history"),
                 asyncio.create_task(self._listen(conn), name="mqtt-listen")}
        try:
            while live in tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    tasks.discard(task)
                    if (exc := task.exception()) is not None:
                        raise exc
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # The live task returns only when closing and drained (or out of time).
        await conn.publish(f"{self.base_topic}/status", b"stopped", qos=1, retain=True)

    async def _publish_live(self, conn: _Connection) -> None:
        topic = f"{self.base_topic}/vitals"
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            rows = self.outbox.rows(after_id=self._live_after, limit=_BATCH)
            for row in rows:
                await conn.publish(topic, row.payload, qos=self._cfg.qos)
                self.outbox.remove(row.id)
                self._live_after = row.id
                self.stats.published += 1
            while self._memory:  # the outbox could not store these: straight to the broker
                held = self._memory.popleft()
                try:
                    await conn.publish(topic, held[1], qos=self._cfg.qos)
                except BaseException:
                    self._memory.appendleft(held)
                    raise
                self.stats.published += 1
                self.stats.direct += 1
            if self._closing.is_set():
                deadline = deadline or loop.time() + self._flush_s
                if not rows or loop.time() >= deadline:
                    return
                continue
            if not rows and not self._memory:
                await self._wake.wait()

    async def _replay(self, conn: _Connection) -> None:
        topic = f"{self.base_topic}/history"
        after = 0
        while not self._closing.is_set():
            rows = self.outbox.rows(after_id=after, up_to_id=self._boundary, limit=_BATCH)
            if not rows:
                if self.stats.replayed:
                    _log.info("mqtt: history replay done; outbox depth %d", self.outbox.depth)
                return
            for row in rows:
                if self._closing.is_set():
                    return
                await conn.publish(topic, _mark_replayed(row.payload), qos=self._cfg.qos)
                self.outbox.remove(row.id)
                after = row.id
                self.stats.replayed += 1
                await asyncio.sleep(self._replay_interval_s)

    async def _listen(self, conn: _Connection) -> None:
        async for topic, payload in conn.messages():
            if self._discovery is not None and topic == self._discovery.ha_status_topic and payload == b"online":
                _log.info("mqtt: Home Assistant came online; re-sending discovery")
                await conn.publish(self._discovery.topic, self._discovery.payload, qos=1, retain=True)


def _quiet_stale_socket_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    """Turn aiomqtt's known lost-connection race into one debug line instead of an asyncio traceback.

    aiomqtt schedules ``loop.add_writer(fd)`` with ``call_soon_threadsafe``; when the broker dies between
    scheduling and running, the fd is already closed and asyncio logs ``OSError: [Errno 9]`` with a
    traceback, although the disconnect itself is handled (the session ends and we reconnect).
    """
    previous = loop.get_exception_handler()
    if getattr(previous, "_vitaledge_mqtt", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno == errno.EBADF and "add_writer" in repr(context.get("handle")):
            _log.debug("mqtt: socket closed before aiomqtt registered a write (connection lost)")
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler._vitaledge_mqtt = True  # type: ignore[attr-defined]  # marks it installed (idempotent)
    loop.set_exception_handler(handler)


def _mark_replayed(payload: bytes) -> bytes:
    record = json.loads(payload)
    record["replayed"] = True
    return json.dumps(record, separators=(",", ":")).encode()


def _read_secret(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:  # the message names the file, never its content
        raise PublishError(f"cannot read mqtt.password_file {path}: {exc.strerror or exc}") from exc
