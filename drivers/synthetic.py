"""The simulated rig: one source yielding webcam, thermal-camera and wristband samples with ground truth.

A seated subject with a raised hand wearing a wristband, filmed by a 640×480 webcam at 30 fps and by
a FLIR ONE-like sled (160×120 thermal at 8.7 Hz plus the sled's own visible camera), while an E4-like
wristband reports skin temperature at 4 Hz. The webcam sees skin pulsing at a known heart rate (a
fraction of a grey level, strongest in green); the thermal camera sees true temperatures plus a
drifting offset error that jumps at shutter events (flagged ``ffc``); the wristband relates to the
palm and wrist through the paper's regressions plus residuals. Truth rides along in ``meta`` only.

Deterministic: the same seed gives the same samples (``t_mono`` counts from the start time given).
``SimulatedRig(...).stream(seconds)`` is a plain generator for evaluations; ``async with rig: async
for s in rig.samples()`` is the Source, paced at real time or as fast as the consumer takes them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Self, TypedDict

import numpy as np

from drivers.base import Demand
from drivers.synthetic_physio import (
    HeartRateTrack,
    OuTrack,
    Physiology,
    SkinTruth,
    TemperatureTruth,
    ThermalCameraErrors,
    ThermalCameraModel,
    ppg_waveform,
)
from drivers.synthetic_scene import HAND_LABELS, HEAD_LABELS, Scene
from fusion.greyscale import grey_as_bgr, is_greyscale, luma_709
from fusion.samples import Sample, SkinTemperature, ThermalFrame, VisibleFrame

__all__ = ["Physiology", "SimulatedRig", "ThermalCameraErrors"]

_NS = 1_000_000_000
_PTT_HAND_S = 0.08  # the pulse reaches the palm this much later than the face
_E4_STEP_C = 0.02  # E4 temperature resolution
_STREAM_ORDER = ("wristband", "thermal", "webcam")  # tie-break at equal times
_SAMPLE_TYPE = {"wristband": "SkinTemperature", "thermal": "ThermalFrame", "webcam": "VisibleFrame"}


class _Stamp(TypedDict):
    """The fields every sample type has, in one place for the three streams."""

    t_mono: int
    t_wall: float
    source: str
    seq: int


class SimulatedRig:
    """The simulated rig (see the module docstring); a Source of all three sample types.

    Args:
        name: source name written into every sample.
        seed: everything random derives from it.
        realtime: pace ``samples()`` at real time; False: as fast as the consumer takes them.
        duration_s: stop after this much sample time; None: run forever.
        physiology: the subject (heart rate, temperatures); defaults to ``Physiology()``.
        camera: the thermal camera's error model; defaults to ``ThermalCameraErrors()``.
        webcam / thermal / wristband: which streams to emit.
        sled_visible: attach the sled's visible image to thermal frames.
        ir_webcam: render the webcam as a mono/IR camera (Rec. 709 luma in three equal channels), marked
            ``greyscale`` as a real one is by its driver.
        ppg_amplitude: relative skin-colour change per pulse (green channel, peak to peak).
        max_lag_s: in real time, samples later than this behind the clock are dropped (counted).
    """

    def __init__(
        self,
        *,
        name: str = "rig",
        seed: int = 1,
        realtime: bool = True,
        duration_s: float | None = None,
        physiology: Physiology | None = None,
        camera: ThermalCameraErrors | None = None,
        webcam: bool = True,
        thermal: bool = True,
        wristband: bool = True,
        sled_visible: bool = True,
        ir_webcam: bool = False,
        ppg_amplitude: float = 0.003,
        max_lag_s: float = 1.0,
    ) -> None:
        if duration_s is not None and duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        self.name = name
        self.dropped = 0
        self.seed = seed
        self.realtime = realtime
        self.duration_s = duration_s
        self.physiology = physiology or Physiology()
        self.camera = camera or ThermalCameraErrors()
        self.rates_hz = {"webcam": 30.0, "thermal": 8.7, "wristband": 4.0}
        self._enabled = {"webcam": webcam, "thermal": thermal, "wristband": wristband}
        self._sled_visible = sled_visible
        self._ir_webcam = ir_webcam
        self._ppg_amplitude = ppg_amplitude
        self._max_lag_s = max_lag_s
        self._scene: Scene | None = None
        self._entered = False
        self._demand: Demand | None = None

    def set_demand(self, demand: Demand | None) -> None:
        """Ask ``demand(sample_type, t_mono)`` before rendering each sample in real time (DemandAware)."""
        self._demand = demand

    # --- Source lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError(f"{self.name}: source is already open (not reentrant)")
        await asyncio.to_thread(self._get_scene)
        self._entered = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._entered = False

    async def samples(self) -> AsyncIterator[Sample]:
        """Yield samples in ``t_mono`` order until ``duration_s`` of sample time has passed."""
        if not self._entered:
            raise RuntimeError(f"{self.name}: use 'async with' before iterating samples()")
        t0_mono_ns = time.monotonic_ns()
        # A sample already too late to be kept (in real time), or one fusion would thin out (``set_demand``),
        # is skipped before it is rendered: on a slow CPU the rig must not spend its time rendering what is dropped.
        max_lag_ns = round(self._max_lag_s * _NS) if self.realtime else None
        demand = self._demand

        def skip(stream: str, t_mono: int) -> bool:
            if max_lag_ns is not None and time.monotonic_ns() - t_mono > max_lag_ns:
                self.dropped += 1  # late: lost, as a camera's frame nobody read in time
                return True
            return demand is not None and not demand(_SAMPLE_TYPE[stream], t_mono)

        it = _RigRun(self, self._get_scene(), self.duration_s, t0_mono_ns, time.time()).run(skip=skip)
        while self._entered:
            # Rendering runs off the event loop so a fast run never starves other tasks.
            sample = await asyncio.to_thread(next, it, None)
            if sample is None:
                return
            if self.realtime:
                delay_s = (sample.t_mono - time.monotonic_ns()) / _NS
                if delay_s > 0:
                    await asyncio.sleep(delay_s)
                elif -delay_s > self._max_lag_s:
                    self.dropped += 1
                    continue
            yield sample

    # --- the generator ------------------------------------------------------------------------------

    def _get_scene(self) -> Scene:
        if self._scene is None:
            self._scene = Scene(np.random.default_rng(np.random.SeedSequence([self.seed, 7])))
        return self._scene

    def stream(self, seconds: float | None = None, *, t0_mono_ns: int = 0, t0_wall: float = 0.0) -> Iterator[Sample]:
        """All enabled streams, interleaved in time order, from a fresh start (same seed, same samples).

        Args:
            seconds: sample time to cover; None: forever.
            t0_mono_ns: ``t_mono`` of the rig's time zero.
            t0_wall: ``t_wall`` of the rig's time zero.
        """
        return _RigRun(self, self._get_scene(), seconds, t0_mono_ns, t0_wall).run()


class _RigRun:
    """One run of the rig: its random streams, processes and per-stream counters."""

    def __init__(self, rig: SimulatedRig, scene: Scene, seconds: float | None, t0_mono_ns: int, t0_wall: float):
        self.rig, self.scene = rig, scene
        self.end_ns = None if seconds is None else round(seconds * _NS)
        self.t0_mono_ns, self.t0_wall = t0_mono_ns, t0_wall
        rngs = [np.random.default_rng(s) for s in np.random.SeedSequence([rig.seed, 1]).spawn(8)]
        phys = rig.physiology
        self.truth = SkinTruth(rngs[0], phys)
        self.heart = HeartRateTrack(rngs[1], phys)
        self.camera = ThermalCameraModel(rngs[2], rig.camera, phys.ambient_c)
        motion = rngs[3]
        self.head_x = OuTrack(motion, mean=0.0, sd=2.5, tau_s=2.0, dt_s=0.05)
        self.head_y = OuTrack(motion, mean=0.0, sd=1.5, tau_s=2.0, dt_s=0.05)
        self.hand_x = OuTrack(motion, mean=0.0, sd=1.5, tau_s=3.0, dt_s=0.05)
        self.hand_y = OuTrack(motion, mean=0.0, sd=1.5, tau_s=3.0, dt_s=0.05)
        self.light = OuTrack(rngs[4], mean=0.0, sd=0.004, tau_s=3.0, dt_s=0.1)
        self.flicker_phase = float(rngs[4].uniform(0, 2 * math.pi))
        self.webcam_rng, self.thermal_rng, self.band_rng = rngs[5], rngs[6], rngs[7]
        self.band_bias_c = 0.1 * float(self.band_rng.standard_normal())  # E4 accuracy ±0.2 °C
        self.band_value_c = math.nan
        self.band_second = -1
        self.ppg = ppg_waveform()
        self.seq = dict.fromkeys(_STREAM_ORDER, 0)
        # Palm pattern: warmer centre, cooler fingers, zero mean over the hand's skin.
        finger_drop_c = 0.4
        self.palm_rise_c = finger_drop_c * scene.label_area("hand", "finger") / scene.label_area("hand", "palm")
        self.finger_drop_c = finger_drop_c

    # motion and light ------------------------------------------------------------------------------

    def _motion(self, t_s: float) -> tuple[tuple[int, int], tuple[int, int]]:
        bob = 1.0 * math.sin(2 * math.pi * self.rig.physiology.respiration_hz * t_s)
        head = (round(self.head_x.at(t_s)), round(self.head_y.at(t_s) + bob))
        hand = (round(self.hand_x.at(t_s)), round(self.hand_y.at(t_s)))
        return head, hand

    def _gain(self, t_s: float) -> float:
        mains = 0.003 * math.sin(2 * math.pi * 100.0 * t_s + self.flicker_phase)
        return 1.0 + self.light.at(t_s) + mains

    def _pulses(self, t_s: float) -> tuple[float, float, float]:
        bpm = self.heart.bpm(t_s)
        phase = self.heart.phase(t_s)
        breath = 1.0 + 0.1 * math.sin(2 * math.pi * self.rig.physiology.respiration_hz * t_s)
        amp = self.rig._ppg_amplitude * breath
        n = len(self.ppg)
        face = amp * float(self.ppg[int((phase % 1.0) * n)])
        hand = 1.3 * amp * float(self.ppg[int(((phase - bpm / 60.0 * _PTT_HAND_S) % 1.0) * n)])
        return bpm, face, hand

    # samples ---------------------------------------------------------------------------------------

    def _stamp(self, stream: str, t_ns: int) -> _Stamp:
        """The fields every sample has (times, source, seq) for the next sample of ``stream``."""
        seq = self.seq[stream]
        self.seq[stream] = seq + 1
        return _Stamp(t_mono=self.t0_mono_ns + t_ns, t_wall=self.t0_wall + t_ns / _NS, source=self.rig.name, seq=seq)

    def webcam(self, t_ns: int) -> VisibleFrame:
        t_s = t_ns / _NS
        bpm, face, hand = self._pulses(t_s)
        head_xy, hand_xy = self._motion(t_s)
        world = self.scene.visible_world(head_xy, hand_xy, face, hand)
        image = self.scene.webcam(world, self._gain(t_s), self.webcam_rng)
        if self.rig._ir_webcam:
            image = grey_as_bgr(luma_709(image))
        image.flags.writeable = False
        return VisibleFrame(
            **self._stamp("webcam", t_ns),
            image=image,
            greyscale=is_greyscale(image),
            meta={"true_hr_bpm": bpm, "head_shift_px": head_xy},
        )

    def _temperatures(self, tt: TemperatureTruth) -> tuple[np.ndarray, np.ndarray, float, float]:
        face, amb = tt.face_c, tt.ambient_c
        head = {
            "hair": amb + 0.4 * (face - amb),
            "skin": face,
            "neck": face - 0.3,
            "eye": face - 0.4,
            "nose": face - 0.8,
            "canthus": face + 0.5,
            "ear": face - 1.2,
            "brow": face - 0.5,
            "lip": face - 0.2,
        }
        hand = {
            "palm": tt.palm_c + self.palm_rise_c,
            "finger": tt.palm_c - self.finger_drop_c,
            "forearm": tt.wrist_c,
            "band": tt.wrist_c - 0.3 * (tt.wrist_c - amb),
        }
        head_v = np.array([head[k] for k in HEAD_LABELS], np.float32)
        hand_v = np.array([hand[k] for k in HAND_LABELS], np.float32)
        return head_v, hand_v, amb, amb + 0.55 * (face - amb)

    def thermal(self, t_ns: int) -> ThermalFrame:
        t_s = t_ns / _NS
        err = self.camera.at(t_s)
        tt = self.truth.at(t_s)
        head_xy, hand_xy = self._motion(t_s)
        cam = self.rig.camera
        if err.ffc:  # the shutter covers the sensor: a flat frame at the shutter's temperature
            celsius = (err.fpa_c + cam.netd_c * self.thermal_rng.standard_normal((120, 160))).astype(np.float32)
        else:
            head_v, hand_v, wall_c, cloth_c = self._temperatures(tt)
            true_c = self.scene.thermal_true(head_xy, hand_xy, head_v, hand_v, wall_c, cloth_c)
            nonuniformity = cam.nonuniformity_c * (0.3 + abs(err.drift_fpa_c))
            celsius = self.scene.thermal_measured(true_c, err.offset_c, nonuniformity, cam.netd_c, self.thermal_rng)
        celsius.flags.writeable = False
        visible = None
        if self.rig._sled_visible:
            _, face, hand = self._pulses(t_s)
            world = self.scene.visible_world(head_xy, hand_xy, face, hand)
            visible = self.scene.sled_visible(world, self._gain(t_s), self.thermal_rng)
            visible.flags.writeable = False
        meta = {
            "true_face_c": tt.face_c,
            "true_palm_c": tt.palm_c,
            "true_wrist_c": tt.wrist_c,
            "offset_error_c": err.offset_c,
            "fpa_c": err.fpa_c,
            "true_ambient_c": tt.ambient_c,
        }
        return ThermalFrame(
            **self._stamp("thermal", t_ns),
            celsius=celsius,
            visible=visible,
            ffc=err.ffc,
            meta=meta,
        )

    def wristband(self, t_ns: int) -> SkinTemperature:
        t_s = t_ns / _NS
        x = self.truth.at(t_s).wristband_skin_c
        second = int(t_s)
        if second != self.band_second:  # the E4 updates its value about once a second
            self.band_second = second
            noisy = x + self.band_bias_c + 0.02 * float(self.band_rng.standard_normal())
            self.band_value_c = round(round((noisy - 0.01) / _E4_STEP_C) * _E4_STEP_C + 0.01, 2)
        return SkinTemperature(
            **self._stamp("wristband", t_ns),
            celsius=self.band_value_c,
            site="wrist",
            device="synthetic-e4",
            meta={"true_skin_c": x},
        )

    def run(self, skip: Callable[[str, int], bool] | None = None) -> Iterator[Sample]:
        """The samples in time order; ``skip(stream, t_mono)`` true leaves one out unrendered (a gap in ``seq``)."""
        rig = self.rig
        streams = [s for s in _STREAM_ORDER if rig._enabled[s]]
        index = dict.fromkeys(streams, 0)
        make: dict[str, Callable[[int], Sample]] = {
            "webcam": self.webcam,
            "thermal": self.thermal,
            "wristband": self.wristband,
        }

        def due(stream: str) -> int:
            return round(index[stream] * _NS / rig.rates_hz[stream])

        while streams:
            stream = min(streams, key=lambda s: (due(s), _STREAM_ORDER.index(s)))
            t_ns = due(stream)
            if self.end_ns is not None and t_ns >= self.end_ns:
                return
            index[stream] += 1
            if skip is not None and skip(stream, self.t0_mono_ns + t_ns):
                self.seq[stream] += 1  # a gap in seq is a sample not delivered
                continue
            yield make[stream](t_ns)
