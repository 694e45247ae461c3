"""The simulated rig's scene: a seated person with a raised hand, seen by a webcam, the thermal
camera's sled visible camera and the thermal camera itself.

Geometry lives in *world* pixels, which are the webcam's own pixels (640×480). The person is drawn
once into label images (hair, face skin, eyes, nose, ... ; palm, fingers, forearm, wristband) from
which both the colour sprites and the thermal coverage maps derive, so the three cameras always
agree. Per frame only shifts, a pulse modulation, gains and noise are applied (fast numpy/OpenCV).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["HAND_LABELS", "HEAD_LABELS", "Scene", "SceneGeometry", "default_geometry"]

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

WORLD_W, WORLD_H = 640, 480
THERMAL_W, THERMAL_H = 160, 120

HEAD_LABELS = ("hair", "skin", "neck", "eye", "nose", "canthus", "ear", "brow", "lip")
HAND_LABELS = ("palm", "finger", "forearm", "band")
_HEAD_SKIN = {"skin": 1.0, "neck": 1.0, "nose": 1.0, "canthus": 1.0, "ear": 1.0, "lip": 0.5}
_HAND_SKIN = {"palm": 1.0, "finger": 1.0, "forearm": 1.0}
# Blood-volume-pulse signature in B, G, R (de Haan & van Leest 2014: strongest in green).
_PBV_BGR = np.array([0.53, 0.77, 0.33], np.float32) / 0.77


@dataclass(frozen=True, slots=True)
class SceneGeometry:
    """Where each camera looks, as affine maps from world (webcam) pixels.

    ``sled_visible``: world → the sled's visible camera (640×480): a different position and a
    slightly narrower view than the webcam. ``thermal``: world → thermal pixels (160×120), a
    sub-window of the sled's visible view (parallax of the sled's two lenses).
    """

    sled_visible: npt.NDArray[np.float64]
    thermal: npt.NDArray[np.float64]


def _affine(scale: float, x0: float, y0: float) -> npt.NDArray[np.float64]:
    """Maps world (x, y) to scale·(x − x0, y − y0)."""
    return np.array([[scale, 0.0, -scale * x0], [0.0, scale, -scale * y0]])


def default_geometry() -> SceneGeometry:
    """The rig's default sled placement: the sled's visible camera sees world x 45..634, y 14..456; its
    thermal camera a window 1.55 times narrower (as on a FLIR ONE Gen 3), world x 135..515, y 92..377."""
    sled = _affine(640 / 589, 45.0, 14.0)
    # Thermal window inside the sled's visible image: 413×310 sled pixels from (98, 85) → 160×120.
    sled_to_thermal = _affine(160 / 413, 98.0, 85.0)
    thermal = sled_to_thermal[:, :2] @ sled
    thermal[:, 2] += sled_to_thermal[:, 2]
    return SceneGeometry(sled_visible=sled, thermal=thermal)


@dataclass(slots=True)
class _Sprite:
    """One moving group (head or hand) cropped to its box in world pixels."""

    x0: int
    y0: int
    inv_alpha: F32  # h×w×3: 1 − coverage
    colour: F32  # h×w×3: coverage·colour (premultiplied)
    pulse: F32  # h×w×3: coverage·colour·skin·signature (the pulse removes this much)
    coverage: F32  # L×(h/2)×(w/2): per-label coverage at half resolution (thermal)


def _ellipse(img: U8, centre: tuple[float, float], axes: tuple[float, float], label: int, angle: float = 0) -> None:
    c = (round(centre[0] * 16), round(centre[1] * 16))
    a = (round(axes[0] * 16), round(axes[1] * 16))
    cv2.ellipse(img, c, a, angle, 0, 360, label, -1, cv2.LINE_8, 4)


def _draw_head(lab: U8) -> None:
    n = {name: i + 1 for i, name in enumerate(HEAD_LABELS)}
    cx, cy = 250.0, 200.0
    _ellipse(lab, (cx, cy - 22), (80, 84), n["hair"])
    cv2.rectangle(lab, (int(cx - 36), int(cy + 40)), (int(cx + 36), int(cy + 135)), n["neck"], -1)
    _ellipse(lab, (cx - 66, cy + 8), (11, 22), n["ear"])
    _ellipse(lab, (cx + 66, cy + 8), (11, 22), n["ear"])
    _ellipse(lab, (cx, cy + 12), (66, 86), n["skin"])
    # Hairline over the forehead.
    cv2.ellipse(lab, (int(cx), int(cy - 58)), (70, 38), 0, 180, 360, n["hair"], -1)
    for side in (-1, 1):
        ex = cx + side * 27
        _ellipse(lab, (ex, cy - 22), (19, 5), n["brow"], angle=side * -6)
        _ellipse(lab, (ex, cy - 4), (14, 6.5), n["eye"])
        _ellipse(lab, (cx + side * 12, cy - 4), (3.5, 3.5), n["canthus"])
    _ellipse(lab, (cx, cy + 26), (11, 14), n["nose"])
    _ellipse(lab, (cx, cy + 52), (24, 7.5), n["lip"])


def _draw_hand(lab: U8) -> None:
    n = {name: i + 1 for i, name in enumerate(HAND_LABELS)}
    cv2.fillConvexPoly(lab, np.array([[428, 300], [486, 300], [505, 480], [415, 480]], np.int32), n["forearm"])
    cv2.rectangle(lab, (426, 306), (488, 332), n["band"], -1)
    for fx, top, w in ((424, 150, 15), (442, 132, 16), (461, 136, 16), (479, 158, 14)):
        cv2.rectangle(lab, (fx - w // 2, top + w // 2), (fx + w // 2, 215), n["finger"], -1)
        cv2.circle(lab, (fx, top + w // 2), w // 2, n["finger"], -1)
    _ellipse(lab, (404, 238), (11, 34), n["finger"], angle=-28)
    _ellipse(lab, (454, 252), (42, 52), n["palm"])


def _shade_face(h: int, w: int) -> F32:
    """Lambertian-ish shading of the head: darker rim and eye sockets, lit forehead and nose bridge."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = 250.0, 212.0
    r2 = ((xx - cx) / 70) ** 2 + ((yy - cy) / 92) ** 2
    shade = 1.05 - 0.32 * np.clip(r2, 0, 1.5) ** 2
    for side in (-1, 1):
        shade -= 0.22 * np.exp(-(((xx - (cx + side * 27)) / 17) ** 2 + ((yy - 194) / 11) ** 2))
    shade += 0.10 * np.exp(-(((xx - cx) / 7) ** 2 + ((yy - 215) / 22) ** 2))
    shade -= 0.12 * np.exp(-(((xx - cx) / 16) ** 2 + ((yy - 240) / 4) ** 2))
    out: F32 = shade.astype(np.float32)
    return out


class Scene:
    """Renders the three camera views for given motions, pulse values, gains and temperatures.

    Args:
        rng: draws the texture and the sensor-noise banks (once).
        geometry: where the sled looks.
    """

    def __init__(self, rng: np.random.Generator, geometry: SceneGeometry | None = None) -> None:
        self.geometry = geometry or default_geometry()
        head_lab = np.zeros((WORLD_H, WORLD_W), np.uint8)
        _draw_head(head_lab)
        hand_lab = np.zeros((WORLD_H, WORLD_W), np.uint8)
        _draw_hand(hand_lab)
        self.head_labels = head_lab
        self.hand_labels = hand_lab

        yy, xx = np.mgrid[0:WORLD_H, 0:WORLD_W].astype(np.float32)
        wall = np.empty((WORLD_H, WORLD_W, 3), np.float32)
        grad = 1.0 - 0.12 * (yy / WORLD_H) - 0.05 * ((xx - 320) / 320) ** 2
        for ch, v in enumerate((168.0, 178.0, 184.0)):
            wall[..., ch] = v * grad
        torso = np.zeros((WORLD_H, WORLD_W), np.uint8)
        cv2.fillPoly(torso, [np.array([[120, 480], [140, 372], [250, 335], [360, 372], [380, 480]], np.int32)], 1)
        torso_a = cv2.GaussianBlur(torso.astype(np.float32), (5, 5), 1.0)[..., None]
        self._background = (wall * (1 - torso_a) + torso_a * np.array([74, 70, 72], np.float32)).astype(np.float32)
        self._torso_cov = cv2.resize(torso_a[..., 0], (WORLD_W // 2, WORLD_H // 2), interpolation=cv2.INTER_AREA)
        self._wall_grad = cv2.resize(0.5 - yy / WORLD_H, (WORLD_W // 2, WORLD_H // 2), interpolation=cv2.INTER_AREA)

        texture = cv2.GaussianBlur(rng.standard_normal((WORLD_H, WORLD_W)).astype(np.float32), (0, 0), 1.5)
        face_colours = {
            "hair": (32, 40, 54),
            "skin": (118, 148, 198),
            "neck": (108, 136, 184),
            "eye": (205, 205, 215),
            "nose": (122, 153, 204),
            "canthus": (112, 140, 192),
            "ear": (110, 140, 190),
            "brow": (38, 46, 62),
            "lip": (92, 98, 170),
        }
        hand_colours = {
            "palm": (136, 163, 214),
            "finger": (130, 158, 208),
            "forearm": (116, 146, 196),
            "band": (200, 90, 30),
        }
        face_col = self._colour(head_lab, HEAD_LABELS, face_colours) * _shade_face(WORLD_H, WORLD_W)[..., None]
        # Irises and pupils, nostrils: small dark features Haar-like detectors rely on.
        for side in (-1, 1):
            cv2.circle(face_col, (250 + side * 27, 196), 6, (45, 55, 75), -1, cv2.LINE_AA)
            cv2.circle(face_col, (250 + side * 27, 196), 2, (15, 15, 20), -1, cv2.LINE_AA)
            cv2.ellipse(face_col, (250 + side * 6, 238), (4, 2), 0, 0, 360, (50, 60, 90), -1, cv2.LINE_AA)
        hand_col = self._colour(hand_lab, HAND_LABELS, hand_colours)
        hand_col *= (1.0 - 0.18 * np.clip(((xx - 454) / 60) ** 2, 0, 1))[..., None]
        face_col *= (1 + 0.015 * texture)[..., None]
        hand_col *= (1 + 0.015 * texture)[..., None]
        self._head = self._sprite(head_lab, HEAD_LABELS, face_col, _HEAD_SKIN)
        self._hand = self._sprite(hand_lab, HAND_LABELS, hand_col, _HAND_SKIN)

        # Sensor-noise banks (σ in grey levels), read at random offsets: fresh noise costs 10× more.
        pad = 32
        self._noise_pad = pad
        self._webcam_noise = rng.normal(0, 2.0, (4, WORLD_H + pad, WORLD_W + pad, 3)).astype(np.float32)
        pattern = cv2.resize(
            rng.standard_normal((6, 8)).astype(np.float32), (THERMAL_W, THERMAL_H), interpolation=cv2.INTER_CUBIC
        )
        self._thermal_pattern: F32 = (pattern / float(np.std(pattern))).astype(np.float32)

    @staticmethod
    def _colour(lab: U8, names: tuple[str, ...], colours: dict[str, tuple[int, int, int]]) -> F32:
        lut = np.zeros((len(names) + 1, 3), np.float32)
        for i, name in enumerate(names):
            lut[i + 1] = colours[name]
        out: F32 = lut[lab]
        return out

    @staticmethod
    def _sprite(lab: U8, names: tuple[str, ...], colour: F32, skin: dict[str, float]) -> _Sprite:
        ys, xs = np.nonzero(lab)
        x0, y0 = int(xs.min()) - 8 & ~1, int(ys.min()) - 8 & ~1
        x1, y1 = int(xs.max()) + 10 & ~1, int(ys.max()) + 10 & ~1
        lab = lab[y0:y1, x0:x1]
        cov = cv2.GaussianBlur((lab > 0).astype(np.float32), (5, 5), 0.8)[..., None]
        skin_w = np.zeros(lab.shape, np.float32)
        for i, name in enumerate(names):
            skin_w[lab == i + 1] = skin.get(name, 0.0)
        skin_blur = cv2.GaussianBlur(skin_w, (5, 5), 0.8)[..., None]
        col = colour[y0:y1, x0:x1]
        half = (lab.shape[1] // 2, lab.shape[0] // 2)
        per_label = np.stack(
            [
                cv2.resize((lab == i + 1).astype(np.float32), half, interpolation=cv2.INTER_AREA)
                for i in range(len(names))
            ]
        )
        return _Sprite(
            x0=x0,
            y0=y0,
            inv_alpha=np.repeat(1 - cov, 3, axis=2).astype(np.float32),
            colour=(cov * col).astype(np.float32),
            pulse=(cov * col * skin_blur * _PBV_BGR).astype(np.float32),
            coverage=per_label,
        )

    def label_area(self, group: str, label: str) -> float:
        """Area in world pixels of one label (used to keep region temperature patterns zero-mean)."""
        names, lab = (HEAD_LABELS, self.head_labels) if group == "head" else (HAND_LABELS, self.hand_labels)
        return float(np.count_nonzero(lab == names.index(label) + 1))

    # --- visible -----------------------------------------------------------------------------------

    @staticmethod
    def _paste(world: F32, s: _Sprite, dx: int, dy: int, pulse: float) -> None:
        h, w = s.inv_alpha.shape[:2]
        x0, y0 = s.x0 + dx, s.y0 + dy
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, WORLD_W), min(y0 + h, WORLD_H)
        if xa >= xb or ya >= yb:
            return
        sl = (slice(ya - y0, yb - y0), slice(xa - x0, xb - x0))
        roi = world[ya:yb, xa:xb]  # cv2 works in place on the view, ~10× faster than numpy here
        cv2.multiply(roi, s.inv_alpha[sl], dst=roi)
        cv2.add(roi, s.colour[sl], dst=roi)
        if pulse:
            cv2.scaleAdd(s.pulse[sl], -pulse, roi, dst=roi)

    def visible_world(self, head: tuple[int, int], hand: tuple[int, int], pulse_face: float, pulse_hand: float) -> F32:
        """The noiseless scene in world pixels (float BGR) for given motions and pulse (relative) values."""
        world = self._background.copy()
        self._paste(world, self._head, head[0], head[1], pulse_face)
        self._paste(world, self._hand, hand[0], hand[1], pulse_hand)
        return world

    def webcam(self, world: F32, gain: float, rng: np.random.Generator) -> U8:
        """The webcam's 8-bit frame: illumination gain, sensor noise, rounding."""
        k = int(rng.integers(len(self._webcam_noise)))
        ox, oy = (int(v) for v in rng.integers(self._noise_pad, size=2))
        noise = self._webcam_noise[k, oy : oy + WORLD_H, ox : ox + WORLD_W]
        return np.asarray(cv2.convertScaleAbs(cv2.scaleAdd(world, gain, noise)), np.uint8)  # rounds, saturates

    def sled_visible(self, world: F32, gain: float, rng: np.random.Generator) -> U8:
        """The sled's visible camera: its own view, white balance and noise, then JPEG as the sled sends it."""
        view = cv2.warpAffine(
            world,
            self.geometry.sled_visible,
            (WORLD_W, WORLD_H),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        view *= np.array([0.93 * gain, gain, 1.06 * gain], np.float32)
        k = int(rng.integers(len(self._webcam_noise)))
        view = cv2.scaleAdd(self._webcam_noise[k, :WORLD_H, :WORLD_W], 1.5, view)
        ok, jpeg = cv2.imencode(".jpg", cv2.convertScaleAbs(view), [cv2.IMWRITE_JPEG_QUALITY, 85])
        decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR) if ok else None
        if decoded is None:
            raise RuntimeError("OpenCV failed to JPEG-encode a rendered frame")
        return np.asarray(decoded, np.uint8)

    # --- thermal -----------------------------------------------------------------------------------

    @staticmethod
    def _paste_temp(world: F32, s: _Sprite, dx: int, dy: int, temps: npt.NDArray[np.float32]) -> None:
        _, h, w = s.coverage.shape
        x0, y0 = s.x0 // 2 + dx, s.y0 // 2 + dy
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, WORLD_W // 2), min(y0 + h, WORLD_H // 2)
        if xa >= xb or ya >= yb:
            return
        cov = s.coverage[:, ya - y0 : yb - y0, xa - x0 : xb - x0]
        total = cov.sum(axis=0)
        roi = world[ya:yb, xa:xb]
        roi *= 1 - total
        roi += np.tensordot(temps, cov, axes=1)

    def thermal_true(
        self,
        head: tuple[int, int],
        hand: tuple[int, int],
        head_temps_c: npt.NDArray[np.float32],
        hand_temps_c: npt.NDArray[np.float32],
        wall_c: float,
        clothing_c: float,
    ) -> F32:
        """The true temperature field in thermal pixels (optics blur included, no camera error)."""
        world = (wall_c + 0.6 * self._wall_grad).astype(np.float32)
        world *= 1 - self._torso_cov
        world += clothing_c * self._torso_cov
        self._paste_temp(world, self._head, round(head[0] / 2), round(head[1] / 2), head_temps_c)
        self._paste_temp(world, self._hand, round(hand[0] / 2), round(hand[1] / 2), hand_temps_c)
        m = self.geometry.thermal.copy()
        m[:, :2] *= 2.0  # from half-resolution world pixels
        view = cv2.warpAffine(world, m, (THERMAL_W, THERMAL_H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(cv2.GaussianBlur(view, (0, 0), 0.6), np.float32)

    def thermal_measured(
        self, true_c: F32, offset_c: float, nonuniformity_c: float, netd_c: float, rng: np.random.Generator
    ) -> F32:
        """What the camera reports: truth + common offset + fixed pattern + per-pixel noise."""
        noise = rng.standard_normal((THERMAL_H, THERMAL_W), dtype=np.float32)
        out = true_c + np.float32(offset_c) + np.float32(nonuniformity_c) * self._thermal_pattern
        out += np.float32(netd_c) * noise
        return out.astype(np.float32)
