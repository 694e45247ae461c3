"""overlay.auth_token over real HTTP: required beyond loopback, checked on every route, a cookie for the page."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import ValidationError

from edge.config import OverlayConfig, load_config
from edge.stats import AppStats
from edge.web.metrics import Metrics
from edge.web.overlay import Overlay
from fusion.errors import ConfigError
from tests.overlay_frames import readings, visible_frame

TOKEN = "s3cret-overlay-token-0123"


@pytest.fixture
async def overlay() -> AsyncIterator[Overlay]:
    cfg = OverlayConfig(port=0, fps=10.0, auth_token=TOKEN)  # type: ignore[arg-type]  # pydantic makes the SecretStr
    async with Overlay(cfg, metrics=Metrics(AppStats()), device_id="auth") as ov:
        hr, th = readings()
        ov.observe(visible_frame(0), hr, th)
        yield ov


ROUTES = ["", "stream/visible.mjpg", "api/live", "snapshot/visible.jpg", "metrics"]


async def _status(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers, allow_redirects=False) as resp:
        return resp.status


@pytest.mark.parametrize("route", ROUTES)
async def test_no_token_or_a_wrong_one_is_refused(
    overlay: Overlay, route: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{overlay.url}{route}"
    assert await _status(url) == 401
    assert await _status(url, {"Authorization": "Bearer wrong-token-of-some-length"}) == 401
    assert await _status(url, {"Authorization": f"Basic {TOKEN}"}) == 401, "only the Bearer scheme"
    assert await _status(f"{url}?token=wrong") == 401
    async with aiohttp.ClientSession(cookies={"vitaledge_overlay": TOKEN}) as http, http.get(url) as resp:
        assert resp.status == 401, "the cookie is a MAC of the token, not the token"
    assert overlay.errors["overlay_auth_refused"] == 5
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("route", ROUTES)
async def test_the_bearer_token_opens_every_route(overlay: Overlay, route: str) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http, http.get(f"{overlay.url}{route}", headers=headers) as resp:
        assert resp.status == 200
        if route.endswith(".mjpg"):
            assert resp.content_type == "multipart/x-mixed-replace"
            assert b"\xff\xd8" in await asyncio.wait_for(resp.content.readany(), 5), "a JPEG arrives"
        if route == "api/live":
            assert (await resp.json())["device_id"] == "auth"


async def test_token_in_the_query_sets_a_cookie_that_opens_the_streams(
    overlay: Overlay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    jar = aiohttp.CookieJar(unsafe=True)  # the overlay is reached by IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.get(f"{overlay.url}?token={TOKEN}&x=1", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/?x=1", "the token leaves the address bar"
            cookie = resp.cookies["vitaledge_overlay"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
            assert TOKEN not in cookie.value
        async with http.get(overlay.url or "") as resp:
            assert resp.status == 200 and "/stream/visible.mjpg" in await resp.text()
        async with http.get(f"{overlay.url}stream/visible.mjpg") as resp:  # what the page's <img> asks for
            assert resp.status == 200
            assert b"\xff\xd8" in await asyncio.wait_for(resp.content.readany(), 5)
        async with http.get(f"{overlay.url}api/live") as resp:
            assert resp.status == 200
    assert overlay.errors["overlay_auth_refused"] == 0
    assert TOKEN not in caplog.text


async def test_metrics_may_be_left_public() -> None:
    cfg = OverlayConfig(port=0, auth_token=TOKEN, metrics_public=True)  # type: ignore[arg-type]  # a SecretStr
    async with Overlay(cfg, metrics=Metrics(AppStats()), device_id="auth") as ov:
        assert await _status(f"{ov.url}metrics") == 200
        assert await _status(f"{ov.url}api/live") == 401


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "pi.lan"])
def test_a_token_is_required_beyond_loopback(host: str) -> None:
    with pytest.raises(ValidationError, match=r"overlay\.auth_token is required"):
        OverlayConfig(host=host)
    OverlayConfig(host=host, auth_token=TOKEN)  # type: ignore[arg-type]  # pydantic makes the SecretStr


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "::1", "localhost"])
def test_a_token_is_optional_on_loopback(host: str) -> None:
    assert OverlayConfig(host=host).auth_token is None


def test_the_rules_name_their_key_through_load_config_and_never_echo_the_token() -> None:
    base = {"device_id": "lab-1", "sources": [{"kind": "synthetic"}]}
    with pytest.raises(ConfigError, match=r": overlay: overlay\.auth_token is required when host '0\.0\.0\.0'"):
        load_config(None, {**base, "overlay": {"host": "0.0.0.0"}})
    with pytest.raises(ConfigError, match=r": overlay: overlay\.auth_token must be at least 16") as caught:
        load_config(None, {**base, "overlay": {"host": "0.0.0.0", "auth_token": "short-secret"}})
    assert "short-secret" not in str(caught.value)
    cfg = load_config(None, {**base, "overlay": {"host": "0.0.0.0", "auth_token": TOKEN}})
    assert cfg.overlay.auth_token is not None and cfg.overlay.auth_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(cfg) and TOKEN not in str(cfg.model_dump())
