"""``--window``: the annotated frame in an OpenCV window (on a real X server, Xvfb), or a clean no-op."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

import edge.web.window
from edge.web.window import GUI_HINT, WindowSink, gui_available, has_display
from tests.overlay_frames import readings, visible_frame


async def _show_one_frame(env: dict[str, str]) -> WindowSink:
    """Open a window sink in ``env``, offer it one frame, close it."""
    async with WindowSink(env=env) as window:
        hr, th = readings()
        window.observe(visible_frame(0), hr, th)
        await asyncio.sleep(0.1)
    return window


def test_no_display_means_one_warning_and_nothing_else(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge.web.window, "gui_available", lambda: True)  # whatever this build: the display check

    window = asyncio.run(_show_one_frame({}))
    assert window.shown == 0
    assert [r.levelno for r in caplog.records if "no reachable display" in r.getMessage()] == [logging.WARNING]
    assert not has_display({}) and not has_display({"DISPLAY": ":4321"}), "set but unreachable: no display"


def test_a_headless_opencv_says_which_extra_brings_the_window(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge.web.window, "gui_available", lambda: False)  # as opencv-python-headless

    window = asyncio.run(_show_one_frame({"DISPLAY": ":0"}))
    assert window.shown == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no GUI (headless)" in warnings[0] and GUI_HINT in warnings[0]
    assert "vitaledge[gui]" in GUI_HINT and "uninstall -y opencv-python-headless" in GUI_HINT


@pytest.fixture
def xvfb() -> Iterator[str]:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb not installed (Debian package xvfb)")
    display = f":{90 + os.getpid() % 500}"
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket_path = f"/tmp/.X11-unix/X{display[1:]}"
    deadline = time.monotonic() + 10
    while not os.path.exists(socket_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield display
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.skipif(not gui_available(), reason=f"OpenCV without a GUI (headless build); to run it: {GUI_HINT}")
async def test_frames_are_drawn_in_a_window_on_a_real_display(xvfb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPLAY", xvfb)
    assert has_display()
    hr, th = readings()
    async with WindowSink(fps=20) as window:
        # Opening the first window can take seconds on a loaded machine (Qt start-up): keep offering
        # new frames until five are drawn, with a deadline far above that so a broken window still fails.
        deadline = time.monotonic() + 60
        seq = 0
        while window.shown < 5 and time.monotonic() < deadline:
            window.observe(visible_frame(seq), hr, th)
            seq += 1
            await asyncio.sleep(0.05)
    assert window.shown >= 5, f"drew {window.shown} frames of {seq} offered"
    assert window.errors == 0
