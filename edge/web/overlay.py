"""The live overlay: a small aiohttp site with MJPEG streams, live numbers, a chart, the pulse view and /metrics.

``observe()`` only keeps references to the latest frames and readings; a frame is drawn and encoded
only when a viewer asks for it, once per new frame however many viewers there are, at most ``fps``
times a second per viewer, and a slow viewer simply gets the newest frame next (never a backlog).
The pulse view (fusion.pulseview: the newest pulse, its spectrum, the chosen peak, the tracker's path)
comes with the readings, made once per heart-rate step, and is turned into JSON once per step at most.

Hostile clients: only the configured ``Host:`` names are answered (loopback by default), so a web page the
user visits cannot read frames through a DNS-rebound name; connections are capped (the rest are closed
at once, so the MQTT client keeps its file descriptors) and one that is not in a request for
``idle_timeout_s`` (idle, or sending its headers slowly) is closed; malformed requests are logged once
per minute per kind, without a traceback. With ``auth_token`` set (required beyond loopback) every request
needs the token: ``Authorization: Bearer``, or ``?token=`` once, which answers with an HttpOnly, SameSite=Strict
cookie and a redirect to the same URL without the token (so the page's MJPEG ``<img>`` tags and fetches keep
working); ``/metrics`` too unless ``metrics_public``. Compared in constant time, never logged.

Privacy: with ``privacy`` other than ``off`` every frame is lensed (:mod:`edge.privacy`) before it is
drawn on, so the streams and snapshots carry only lensed images; the thermal stream's false colour too.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import logging
import math
from dataclasses import dataclass
from importlib import resources
from typing import Literal, Self
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from aiohttp import web
from aiohttp.typedefs import Handler

from edge.config import OverlayConfig
from edge.privacy import Preset, build_lensing
from edge.publish.wire import json_dict_from_record
from edge.ratelimit import RateLimitedLog
from edge.web.draw import annotate_visible, encode_jpeg, false_colour
from edge.web.metrics import CONTENT_TYPE, Metrics
from fusion.privacy import Lensing
from fusion.pulseview import PulseView
from fusion.samples import Sample, ThermalFrame, VisibleFrame
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

__all__ = ["Overlay", "pulse_view_json"]

_log = logging.getLogger(__name__)

Stream = Literal["visible", "thermal"]
_BOUNDARY = "vitaledge-frame"
_STATIC = ("index.html", "overlay.js", "overlay.css")
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
_COOKIE = "vitaledge_overlay"


@dataclass(frozen=True, slots=True)
class _Latest:
    version: int
    sample: VisibleFrame | ThermalFrame
    heart_rate: HeartRateReading
    thermal: ThermalReading


class Overlay:
    """A Sink that serves the overlay page (and, given ``metrics``, ``/metrics``) while it is entered.

    Args:
        cfg: the ``overlay`` section (bind address, fps cap, JPEG quality, chart length).
        metrics: renders ``/metrics``; None: no metrics route (may be set until the sink is entered).
        device_id: shown on the page.
        serve_page: False serves ``/metrics`` alone (overlay disabled, metrics enabled).
        privacy: the ``privacy.mode`` every served frame is lensed with.
    """

    name = "overlay"

    def __init__(
        self,
        cfg: OverlayConfig,
        *,
        metrics: Metrics | None = None,
        device_id: str = "",
        serve_page: bool = True,
        privacy: Preset = "off",
    ) -> None:
        self._cfg = cfg
        # One lensing per stream: the two streams may be encoded at once, in two worker threads.
        self._lensing = {"visible": build_lensing(privacy, seed=1), "thermal": build_lensing(privacy, seed=2)}
        self.metrics = metrics
        self._serve_page = serve_page
        self._device_id = device_id
        self._latest: dict[Stream, _Latest | None] = {"visible": None, "thermal": None}
        self._versions: dict[Stream, int] = {"visible": 0, "thermal": 0}
        self._encoded: dict[Stream, tuple[int, bytes]] = {}
        self._encode_locks: dict[Stream, asyncio.Lock] = {}
        self._record: dict[str, object] | None = None
        self._heart_rate: HeartRateReading | None = None  # the newest, for /api/pulse
        self._pulse_json: tuple[PulseView, dict[str, object]] | None = None
        self._history: collections.deque[tuple[float, float | None, float | None]] = collections.deque()
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._guards: dict[asyncio.BaseTransport, _Guard] = {}
        self._allowed_hosts = _allowed_hosts(cfg)
        # The cookie holds a MAC of the token, not the token itself.
        token = None if cfg.auth_token is None else cfg.auth_token.get_secret_value().encode()
        self._token = token
        self._cookie = None if token is None else hmac.new(token, b"overlay cookie", hashlib.sha256).hexdigest()
        self._closing = asyncio.Event()
        self._faults = RateLimitedLog(_log)
        self.viewers = 0
        self.encoded_frames = 0  # JPEGs made (0 while nobody watches)
        self.errors: collections.Counter[str] = collections.Counter()  # also refused hosts, closed connections
        self.url: str | None = None  # http://host:port/ once listening

    # --- Sink protocol ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._closing.clear()
        self._encode_locks = {"visible": asyncio.Lock(), "thermal": asyncio.Lock()}
        # aiohttp logs each malformed request with a traceback: this overlay's own logger (not registered,
        # so not shared between instances) turns them into one line per kind per minute.
        http_log = logging.Logger(f"{__name__}.http", logging.INFO)
        http_log.addFilter(_OncePerInterval(self._faults))
        runner = web.AppRunner(self._app(), access_log=None, logger=http_log)  # idle connections: _Guard
        await runner.setup()
        factory = runner.server
        assert factory is not None  # set by setup()
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(lambda: _Guard(self, factory), self._cfg.host, self._cfg.port,
                                              backlog=min(128, self._cfg.max_connections))
        except OSError as exc:  # a taken port must not stop the measurements
            await runner.cleanup()
            _log.error("overlay: cannot listen on %s:%d (%s); overlay disabled",
                       self._cfg.host, self._cfg.port, exc.strerror or exc)
            return self
        self._runner, self._server = runner, server
        host, port = server.sockets[0].getsockname()[:2]
        self._allowed_hosts.add(f"{host}:{port}")
        self.url = f"http://{host}:{port}/"
        _log.info("overlay: %s", self.url)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()
        server, self._server = self._server, None
        if server is not None:
            server.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        for guard in list(self._guards.values()):
            guard.transport.abort()
        self._guards.clear()

    @property
    def connections(self) -> int:
        """Open connections to the page."""
        return len(self._guards)

    async def send(self, record: VitalsRecord) -> None:
        """Keep the latest record and the chart's history (no I/O)."""
        self._record = json_dict_from_record(record)
        hr, temp = record.heart_rate.bpm, record.thermal.face_corrected_c
        self._history.append((record.t_wall, _finite(hr), _finite(temp)))
        while self._history and self._history[0][0] < record.t_wall - self._cfg.chart_s:
            self._history.popleft()

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        """Keep a reference to the newest frame of each stream with the readings of that instant."""
        self._heart_rate = heart_rate
        stream: Stream
        if isinstance(sample, VisibleFrame):
            stream = "visible"
        elif isinstance(sample, ThermalFrame):
            stream = "thermal"
        else:
            return
        self._versions[stream] += 1
        self._latest[stream] = _Latest(self._versions[stream], sample, heart_rate, thermal)

    # --- web -------------------------------------------------------------------------------------

    @web.middleware
    async def _guard_requests(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        host = (request.headers.get("Host") or "").lower()
        if _host_name(host) not in self._allowed_hosts and host not in self._allowed_hosts:
            self.errors["overlay_host_refused"] += 1
            self._faults.warn("overlay_host_refused", f"refused a request for Host {host[:80]!r} (not allowed_hosts)")
            raise web.HTTPMisdirectedRequest(text="this host name is not served here\n")
        self._check_auth(request)
        guard = self._guards.get(request.transport) if request.transport is not None else None
        if guard is None:
            return await handler(request)
        guard.busy(True)
        try:
            return await handler(request)
        finally:
            guard.busy(False)

    def _check_auth(self, request: web.Request) -> None:
        """Return if the request may be answered; raise 401, or the redirect that sets the cookie."""
        token, cookie = self._token, self._cookie
        if token is None or cookie is None or (self._cfg.metrics_public and request.path == "/metrics"):
            return
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token):
            return
        if hmac.compare_digest(request.cookies.get(_COOKIE, "").encode(), cookie.encode()):
            return
        query = request.query.get("token")
        if query is not None and hmac.compare_digest(query.encode(), token):
            rest = [(k, v) for k, v in request.query.items() if k != "token"]
            redirect = web.HTTPSeeOther(location=str(request.rel_url.with_query(rest)))
            redirect.set_cookie(_COOKIE, cookie, path="/", httponly=True, samesite="Strict")
            raise redirect
        self.errors["overlay_auth_refused"] += 1
        self._faults.warn("overlay_auth_refused", "refused a request without the right overlay.auth_token")
        raise web.HTTPUnauthorized(text="overlay.auth_token required\n",
                                   headers={"WWW-Authenticate": 'Bearer realm="vitaledge overlay"'})

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard_requests])
        if self._serve_page:
            app.router.add_get("/", self._static)
            app.router.add_get("/static/{name}", self._static)
            app.router.add_get("/stream/{stream}.mjpg", self._mjpeg)
            app.router.add_get("/snapshot/{stream}.jpg", self._snapshot)
            app.router.add_get("/api/live", self._live)
            app.router.add_get("/api/pulse", self._pulse)
        if self.metrics is not None:
            app.router.add_get("/metrics", self._metrics_page)
        return app

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info.get("name", "index.html")
        if name not in _STATIC:
            raise web.HTTPNotFound()
        body = resources.files("edge.web").joinpath("static", name).read_bytes()
        return web.Response(body=body, content_type=_TYPES[name.rsplit(".", 1)[1]],
                            headers={"Cache-Control": "no-cache"})

    async def _live(self, request: web.Request) -> web.Response:
        history = list(self._history)
        return web.json_response({
            "device_id": self._device_id,
            "record": self._record,
            "chart_s": self._cfg.chart_s,
            "history": {
                "t": [t for t, _, _ in history],
                "bpm": [b for _, b, _ in history],
                "temp_c": [c for _, _, c in history],
            },
            "viewers": self.viewers,
        }, headers={"Cache-Control": "no-store"})

    async def _pulse(self, request: web.Request) -> web.Response:
        hr = self._heart_rate
        view = None if hr is None else hr.pulse_view
        body: dict[str, object] = {
            "method": None if hr is None else hr.method,
            "flags": [] if hr is None else list(hr.flags),
            "view": None,
        }
        if view is not None:
            if self._pulse_json is None or self._pulse_json[0] is not view:
                self._pulse_json = (view, pulse_view_json(view))
            body["view"] = self._pulse_json[1]
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _metrics_page(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        return web.Response(text=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    def _stream_name(self, request: web.Request) -> Stream:
        name = request.match_info["stream"]
        if name == "visible":
            return "visible"
        if name == "thermal":
            return "thermal"
        raise web.HTTPNotFound()

    async def _snapshot(self, request: web.Request) -> web.Response:
        stream = self._stream_name(request)
        jpeg = await self._jpeg(stream)
        if jpeg is None:
            raise web.HTTPServiceUnavailable(text=f"no {stream} frame yet")
        return web.Response(body=jpeg[1], content_type="image/jpeg", headers={"Cache-Control": "no-store"})

    async def _mjpeg(self, request: web.Request) -> web.StreamResponse:
        stream = self._stream_name(request)
        response = web.StreamResponse(headers={
            "Content-Type": f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
            "Cache-Control": "no-store",
        })
        await response.prepare(request)
        period_s = 1.0 / self._cfg.fps
        sent = -1
        self.viewers += 1
        try:
            while not self._closing.is_set():
                latest = self._latest[stream]
                if latest is not None and latest.version != sent:
                    jpeg = await self._jpeg(stream)
                    if jpeg is not None:
                        sent = jpeg[0]
                        await response.write(
                            f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg[1])}\r\n\r\n"
                            .encode() + jpeg[1] + b"\r\n"
                        )
                await asyncio.sleep(period_s)
        except ConnectionError:
            pass  # the viewer went away
        finally:
            self.viewers -= 1
        return response

    async def _jpeg(self, stream: Stream) -> tuple[int, bytes] | None:
        """The newest frame of ``stream`` as JPEG, drawn and encoded once per frame (in a worker thread)."""
        async with self._encode_locks[stream]:
            latest = self._latest[stream]
            if latest is None:
                return None
            cached = self._encoded.get(stream)
            if cached is not None and cached[0] == latest.version:
                return cached
            try:
                jpeg = await asyncio.to_thread(self._render, latest, self._cfg.jpeg_quality, self._lensing[stream])
            except Exception as exc:  # a corrupt frame: counted, logged once a minute, stream goes on
                kind = f"overlay_{stream}_frame"
                self.errors[kind] += 1
                self._faults.warn(kind, f"cannot draw {stream} frame {latest.sample.seq}: {exc!r}")
                return cached
            self.encoded_frames += 1
            self._encoded[stream] = (latest.version, jpeg)
            return self._encoded[stream]

    @staticmethod
    def _render(latest: _Latest, quality: int, lensing: Lensing | None) -> bytes:
        sample = latest.sample
        if isinstance(sample, VisibleFrame):
            image = np.asarray(sample.image)
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise ValueError(f"visible frame is {image.dtype} {image.shape}, expected uint8 H×W×3")
            if lensing is not None:
                image = lensing.apply(image)
            return encode_jpeg(annotate_visible(image, latest.heart_rate, latest.thermal), quality)
        celsius = np.asarray(sample.celsius)
        if celsius.ndim != 2:
            raise ValueError(f"thermal frame has shape {celsius.shape}, expected H×W")
        return encode_jpeg(false_colour(celsius.astype(np.float32, copy=False), latest.thermal, lensing), quality)


def pulse_view_json(view: PulseView) -> dict[str, object]:
    """The pulse view as the page draws it: ages in seconds before the newest window's end, rounded."""
    return {
        "pulse": {"age_s": _rounded(view.pulse_age_s, 3), "value": _rounded(view.pulse, 3)},
        "spectrum": {
            "bpm": _rounded(view.bpm_grid, 2),
            "newest_power": _rounded(view.power, 4),
            "chosen_power": _rounded(view.chosen_power, 4),
            "chosen_age_s": round(view.chosen_age_s, 3),
        },
        "peak": {
            "bpm": _finite(view.peak_bpm),
            "confidence": round(view.confidence, 3),
            "low_confidence": view.low_confidence,
            "low_confidence_below": view.low_confidence_below,
        },
        "path": {
            "age_s": _rounded(view.path_age_s, 3),
            "bpm": _rounded(view.path_bpm, 2),
            "confidence": _rounded(view.path_confidence, 3),
        },
        "ahead": {"age_s": _rounded(view.ahead_age_s, 3), "bpm": _rounded(view.ahead_bpm, 2)},
    }


def _rounded(values: npt.NDArray[np.float64], digits: int) -> list[float | None]:
    # JSON has no NaN: a non-finite value (a flat window's spectrum) becomes null, a gap in the plot.
    return [round(v, digits) if math.isfinite(v) else None for v in values.tolist()]
class _Guard(asyncio.Protocol):
    """One connection: refused beyond the cap, closed when out of a request for ``idle_timeout_s``; the HTTP
    work is aiohttp's own protocol, to which every event is passed on."""

    def __init__(self, overlay: Overlay, factory: web.Server) -> None:
        self._overlay = overlay
        self._inner = factory()
        self._busy = 0
        self._timer: asyncio.TimerHandle | None = None
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        overlay = self._overlay
        if len(overlay._guards) >= overlay._cfg.max_connections or overlay._closing.is_set():
            overlay.errors["overlay_connection_refused"] += 1
            overlay._faults.warn("overlay_connection_refused",
                                 f"{overlay._cfg.max_connections} connections open; closed a new one")
            transport.abort()
            return
        overlay._guards[transport] = self
        self._inner.connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._overlay._cfg.idle_timeout_s, self._expire)

    def _expire(self) -> None:
        self._timer = None
        if self._busy == 0 and self._overlay._guards.get(self.transport) is self:
            self._overlay.errors["overlay_idle_closed"] += 1
            self.transport.abort()

    def busy(self, entering: bool) -> None:
        self._busy += 1 if entering else -1
        if self._busy == 0:
            self._arm()
        elif self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        self._inner.eof_received()
        return None

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._overlay._guards.get(self.transport) is self:
            del self._overlay._guards[self.transport]
            self._inner.connection_lost(exc)


class _OncePerInterval(logging.Filter):
    """aiohttp's lines about malformed requests: one per kind per interval, the exception's text, no traceback."""

    def __init__(self, faults: RateLimitedLog) -> None:
        super().__init__()
        self._faults = faults

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        kind = f"overlay_http_{type(exc).__name__ if exc else 'error'}"
        self._faults.warn(kind, f"{record.getMessage()}: {exc!s}"[:300] if exc else record.getMessage()[:300])
        return False


def _allowed_hosts(cfg: OverlayConfig) -> set[str]:
    names = {"localhost", "127.0.0.1", "[::1]", *(h.lower() for h in cfg.allowed_hosts)}
    if cfg.host not in ("0.0.0.0", "::", ""):
        names.add(f"[{cfg.host}]" if ":" in cfg.host else cfg.host.lower())
    return names


def _host_name(host: str) -> str:
    """The name in a Host header, without its port (``[::1]:8088`` -> ``[::1]``)."""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return ""
    return f"[{name}]" if ":" in name else name


def _finite(value: float | None) -> float | None:
    return round(float(value), 2) if value is not None and math.isfinite(value) else None
