"""``vitaledge run --window``: the annotated webcam frame in an OpenCV window, drawn in its own thread.

The event loop only swaps a reference (``observe``); the thread draws the newest frame at most ``fps``
times a second, so a slow display never holds up fusion. Without a display, or with an OpenCV build that has
no GUI (the default ``opencv-python-headless``; the ``[gui]`` extra brings ``opencv-python``), it logs once
what is missing and does nothing. With ``privacy`` on, the window shows the lensed frame as the page
does: a display may be a remote X server, and a screen is seen by whoever stands at it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Self

import cv2
import numpy as np
import numpy.typing as npt

from edge.privacy import Preset, build_lensing
from edge.web.draw import annotate_visible
from fusion.samples import Sample, VisibleFrame
from fusion.vitals import HeartRateReading, ThermalReading, VitalsRecord

__all__ = ["GUI_HINT", "WindowSink", "gui_available", "has_display"]

_log = logging.getLogger(__name__)
# Both wheels install the same ``cv2`` package: the headless one must go before the GUI one comes.
GUI_HINT = (
    "pip uninstall -y opencv-python-headless && pip install 'vitaledge[gui]' "
    "(opencv-python-headless and opencv-python cannot be installed together)"
)


def gui_available() -> bool:
    """Whether this OpenCV build can open windows (``opencv-python``, not ``opencv-python-headless``)."""
    for line in cv2.getBuildInformation().splitlines():
        name, _, value = line.strip().partition(":")
        if name == "GUI":
            return value.strip().upper() not in ("", "NONE")
    return False


def has_display(env: Mapping[str, str] = os.environ) -> bool:
    """A display server we can reach (X11 or Wayland): Qt aborts the whole process when it cannot connect."""
    wayland = env.get("WAYLAND_DISPLAY")
    if wayland:
        path = Path(wayland) if wayland.startswith("/") else Path(env.get("XDG_RUNTIME_DIR", "/nonexistent")) / wayland
        if _connects(socket.AF_UNIX, str(path)):
            return True
    display = env.get("DISPLAY", "")
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        return _connects(socket.AF_UNIX, f"/tmp/.X11-unix/X{number}")
    return _connects(socket.AF_INET, (host, 6000 + int(number)))


def _connects(family: int, address: str | tuple[str, int]) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            probe.connect(address)
    except OSError:
        return False
    return True


class WindowSink:
    """Shows the annotated webcam frame in a window until the app stops or the window is closed.

    Args:
        fps: drawing rate cap.
        title: window title.
        env: the environment to look for a display in; OpenCV's GUI itself reads ``os.environ``.
    """

    name = "window"

    def __init__(
        self,
        *,
        fps: float = 15.0,
        title: str = "vitaledge",
        env: Mapping[str, str] = os.environ,
        privacy: Preset = "off",
    ) -> None:
        self._period_s = 1.0 / fps
        self._lensing = build_lensing(privacy, seed=3)
        self._title = title
        self._env = env
        self._latest: tuple[VisibleFrame, HeartRateReading, ThermalReading] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.shown = 0  # frames drawn
        self.errors = 0

    async def __aenter__(self) -> Self:
        if not gui_available():
            _log.warning("window: this OpenCV build has no GUI (headless); the web overlay still runs. %s", GUI_HINT)
            return self
        if not has_display(self._env):
            _log.warning("window: no reachable display ($DISPLAY / $WAYLAND_DISPLAY); the web overlay still runs")
            return self
        self._stop.clear()
        self._thread = threading.Thread(target=self._show, name="overlay-window", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)

    async def send(self, record: VitalsRecord) -> None:
        """Records are shown through the readings that come with each frame."""

    def observe(self, sample: Sample, heart_rate: HeartRateReading, thermal: ThermalReading) -> None:
        """Keep the newest webcam frame (a reference swap; the thread reads it)."""
        if isinstance(sample, VisibleFrame):
            self._latest = (sample, heart_rate, thermal)

    def render(
        self, frame: VisibleFrame, heart_rate: HeartRateReading, thermal: ThermalReading
    ) -> npt.NDArray[np.uint8]:
        """The image the window shows for ``frame``: lensed when privacy is on, then annotated."""
        image = np.asarray(frame.image, dtype=np.uint8)
        if self._lensing is not None:
            image = self._lensing.apply(image)
        return annotate_visible(image, heart_rate, thermal)

    def _show(self) -> None:  # thread
        drawn: VisibleFrame | None = None
        try:
            cv2.namedWindow(self._title, cv2.WINDOW_NORMAL)
            while not self._stop.wait(self._period_s):
                latest = self._latest
                if latest is not None and latest[0] is not drawn:
                    drawn = latest[0]
                    try:
                        cv2.imshow(self._title, self.render(drawn, latest[1], latest[2]))
                        self.shown += 1
                    except (cv2.error, ValueError) as exc:  # a corrupt frame: skip it
                        self.errors += 1
                        if self.errors == 1:
                            _log.warning("window: cannot draw frame %d: %s", drawn.seq, exc)
                cv2.waitKey(1)
                if self.shown and cv2.getWindowProperty(self._title, cv2.WND_PROP_VISIBLE) < 1:
                    _log.info("window: closed by the user; the service keeps running")
                    return
        except cv2.error as exc:  # no GUI backend in this OpenCV build, or the display went away
            _log.warning("window: cannot open a window: %s", str(exc).strip().splitlines()[-1])
        finally:
            with contextlib.suppress(cv2.error):
                cv2.destroyAllWindows()
