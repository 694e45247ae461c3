"""The fusion loop's own logic: records cut on sample time, thermal↔webcam pairing, bad samples."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fusion.loop import FusionLoop
from fusion.samples import SkinTemperature, ThermalFrame, VisibleFrame
from fusion.sync import FramePairer
from fusion.vitals import UNNUMBERED, HeartRateReading, ThermalReading

MS = 1_000_000


class _RecordingHeartRate:
    def __init__(self) -> None:
        self.frames: list[int] = []
        self.greyscale: list[bool] = []

    def push(self, image_bgr: npt.NDArray[np.uint8], t_mono: int, *, greyscale: bool = False) -> None:
        self.frames.append(t_mono)
        self.greyscale.append(greyscale)

    def reading(self) -> HeartRateReading:
        return HeartRateReading(bpm=60.0 + len(self.frames), confidence=0.5, method="pos", face_box=None)


class _RecordingThermal:
    def __init__(self) -> None:
        self.skin: list[float] = []
        self.paired: list[int | None] = []

    def push_skin(self, celsius: float, t_mono: int) -> None:
        self.skin.append(celsius)

    def push_thermal(self, frame: ThermalFrame, paired_visible: npt.NDArray[np.uint8] | None) -> None:
        self.paired.append(None if paired_visible is None else int(paired_visible[0, 0, 0]))

    def reading(self) -> ThermalReading:
        return ThermalReading(
            face_raw_c=34.0, face_corrected_c=35.0, offset_c=1.0, reference="fused", reference_measured_c=None,
            reference_estimated_c=None, wristband_c=self.skin[-1] if self.skin else None, registration_ncc=None,
        )


def _visible(t_ms: int, marker: int = 0) -> VisibleFrame:
    image = np.full((4, 4, 3), marker, np.uint8)
    return VisibleFrame(t_mono=t_ms * MS, t_wall=1e9 + t_ms / 1000, source="cam", seq=t_ms, image=image)


def _thermal(t_ms: int) -> ThermalFrame:
    return ThermalFrame(
        t_mono=t_ms * MS, t_wall=1e9 + t_ms / 1000, source="flir", seq=t_ms, celsius=np.zeros((2, 2), np.float32)
    )


def _skin(t_ms: int, celsius: float) -> SkinTemperature:
    return SkinTemperature(t_mono=t_ms * MS, t_wall=1e9 + t_ms / 1000, source="e4", seq=t_ms, celsius=celsius)


def _loop() -> tuple[FusionLoop, _RecordingHeartRate, _RecordingThermal]:
    hr, th = _RecordingHeartRate(), _RecordingThermal()
    return FusionLoop(device_id="dev", heart_rate=hr, thermal=th, pair_tolerance_ns=60 * MS), hr, th


def test_one_record_per_second_of_sample_time_left_for_publishing_to_number() -> None:
    loop, hr, _ = _loop()
    records = []
    for t_ms in range(0, 3500, 33):
        records += loop.push(_visible(t_ms))
    assert [r.seq for r in records] == [UNNUMBERED] * 3, "seq belongs to the publishing side"
    assert [r.t_mono for r in records] == [1000 * MS, 2000 * MS, 3000 * MS]
    # the record describes the state up to its boundary: frames at or after it are not yet in
    assert records[0].heart_rate.bpm == 60.0 + len([t for t in hr.frames if t < 1000 * MS])
    assert abs(records[0].t_wall - (1e9 + 1.0)) < 0.05


def test_a_long_gap_restarts_the_record_clock_instead_of_a_burst() -> None:
    loop, _, _ = _loop()
    assert loop.push(_visible(0)) == []
    records = loop.push(_visible(3600_000))  # an hour later (a suspended laptop)
    assert [r.t_mono for r in records] == [3600_000 * MS]
    assert [r.t_mono for r in loop.push(_visible(3601_000))] == [3601_000 * MS]


def test_thermal_frames_are_paired_with_the_nearest_webcam_frame_within_tolerance() -> None:
    loop, _, th = _loop()
    loop.push(_visible(0, marker=1))
    loop.push(_visible(33, marker=2))
    loop.push(_thermal(40))  # 7 ms after frame 2
    loop.push(_thermal(200))  # 167 ms after the newest webcam frame: no pair
    assert th.paired == [2, None]


def test_non_finite_wristband_readings_are_rejected_and_counted() -> None:
    loop, _, th = _loop()
    loop.push(_skin(0, 33.5))
    loop.push(_skin(250, float("nan")))
    loop.push(_skin(500, float("inf")))
    assert th.skin == [33.5]
    assert loop.rejected["skin_temperature_not_finite"] == 2


def test_frame_pairer_prefers_the_closest_frame() -> None:
    pairer = FramePairer(tolerance_ns=60 * MS, history=3)
    for t_ms, marker in [(0, 1), (33, 2), (66, 3), (99, 4)]:
        pairer.add_visible(np.full((1, 1, 3), marker, np.uint8), t_ms * MS)
    found = pairer.nearest(70 * MS)
    assert found is not None and int(found[0, 0, 0]) == 3
    oldest_kept = pairer.nearest(0)  # frame 1 fell out of the 3-frame history; frame 2 is 33 ms off
    assert oldest_kept is not None and int(oldest_kept[0, 0, 0]) == 2
    assert pairer.nearest(200 * MS) is None


def test_the_frames_greyscale_mark_reaches_the_heart_rate_path() -> None:
    loop, hr, _ = _loop()
    colour = _visible(0)
    grey = VisibleFrame(t_mono=40 * MS, t_wall=1e9, source="cam", seq=1, image=colour.image, greyscale=True)
    loop.push(colour)
    loop.push(grey)
    assert hr.greyscale == [False, True]
