"""Self-supervised pulse-model training (issue 13): a tiny model learns on a rig video, exports, runs live."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs the [train] extra (torch); the runtime does not")

from drivers.synthetic import SimulatedRig  # noqa: E402  # after the skip: nothing below runs without torch
from drivers.synthetic_physio import Physiology  # noqa: E402
from edge.build import build_heart_rate_pipeline  # noqa: E402
from edge.cli import main  # noqa: E402
from edge.config import HeartRateConfig  # noqa: E402
from fusion.samples import VisibleFrame  # noqa: E402
from models.physnet import PhysNet, PhysNetConfig  # noqa: E402
from models.training.data import decode_video  # noqa: E402
from models.training.export import export_onnx, load_model, parity  # noqa: E402
from models.training.loss import band_psd  # noqa: E402
from models.training.teacher import file_digest, teacher_pulse  # noqa: E402
from models.training.trainer import ClipSampler, TrainConfig, train  # noqa: E402

pytestmark = pytest.mark.slow  # one Haar-tracked decode of a 16 s video (~20 s here), then seconds each

BPM = 72.0
SECONDS = 16.0
TINY = PhysNetConfig(size=16, width=2, depth=2, blocks=3)


def _rig_frames(seconds: float) -> Iterator[VisibleFrame]:
    rig = SimulatedRig(
        physiology=Physiology(hr_bpm=BPM), thermal=False, wristband=False, realtime=False, seed=5, ppg_amplitude=0.01
    )
    for sample in rig.stream(seconds):
        assert isinstance(sample, VisibleFrame)
        yield sample


@pytest.fixture(scope="module")
def rig_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 s of the rig's face at 72 bpm, written losslessly (FFV1) so the pulse survives."""
    path = tmp_path_factory.mktemp("rig") / "rig.avi"
    writer: cv2.VideoWriter | None = None
    for frame in _rig_frames(SECONDS):
        if writer is None:
            h, w = frame.image.shape[:2]
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), 30.0, (w, h))
        writer.write(frame.image)
    assert writer is not None
    writer.release()
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One decode of the rig video for the whole module (the Haar tracker takes ~15 s here)."""
    return tmp_path_factory.mktemp("cache")


def _cfg(steps: int) -> TrainConfig:
    return TrainConfig(arch=TINY, clip_s=4.0, view_s=2.0, batch=2, lr=3e-3, steps=steps, val_every=10, val_clips=2)


def test_decoded_face_crops_are_cached_and_carry_the_pulse(rig_video: Path, cache_dir: Path) -> None:
    video = decode_video(rig_video, size=16, face=True, cache_dir=cache_dir)
    assert video.fps == pytest.approx(30.0) and video.valid.mean() > 0.9
    assert len(list(cache_dir.glob("*.npz"))) == 1
    again = decode_video(rig_video, size=16, face=True, cache_dir=cache_dir)
    np.testing.assert_array_equal(again.frames, video.frames)
    # The crops' mean V channel (red minus luma) pulses at the rig's rate.
    v = torch.from_numpy(video.frames[video.valid][:, :, :, 2].reshape(int(video.valid.sum()), -1).mean(axis=1))
    psd = band_psd(v[None].double(), 30.0, n_fft=4096)[0]
    freqs = np.fft.rfftfreq(4096, 1 / 30.0) * 60
    band = freqs[(freqs >= 40) & (freqs <= 180)]
    assert band[int(psd.argmax())] == pytest.approx(BPM, abs=3.0)


def test_negative_clip_is_the_anchor_resampled(rig_video: Path, cache_dir: Path) -> None:
    video = decode_video(rig_video, size=16, face=True, cache_dir=cache_dir)
    clip = ClipSampler([video], _cfg(1), random.Random(0)).sample()
    assert clip.anchor.shape == clip.negative.shape == (3, 120, 16, 16)
    assert 0.66 <= min(clip.q, 1 / clip.q) <= 0.8
    assert not np.allclose(clip.anchor, clip.negative)
    np.testing.assert_allclose(clip.anchor.mean(axis=1), 0.0, atol=1e-3)  # temporal z-normalisation
    assert clip.teacher_anchor is None
    # With a teacher, its pulse is sampled at the anchor's and at the negative's times.
    ramp = np.arange(len(video.frames), dtype=np.float32) / np.float32(video.fps)  # the teacher "pulse" = time
    taught = ClipSampler([dataclasses.replace(video, teacher=ramp)], _cfg(1), random.Random(0)).sample()
    assert taught.teacher_anchor is not None and taught.teacher_negative is not None
    k = np.arange(120) / 30.0
    t0 = taught.teacher_anchor[0]
    np.testing.assert_allclose(taught.teacher_anchor, t0 + k, atol=1e-4)
    np.testing.assert_allclose(taught.teacher_negative, t0 + taught.q * k, atol=1e-4)


def test_tiny_model_loss_falls_and_selection_keeps_a_scored_state(
    rig_video: Path, cache_dir: Path, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    video = decode_video(rig_video, size=16, face=True, cache_dir=cache_dir)
    torch.manual_seed(0)  # the initial weights: the test's outcome must not depend on the tests run before it
    model = PhysNet(TINY)
    result = train(model, [video], _cfg(40), checkpoint=tmp_path / "m.ckpt.pt")
    assert result.steps == 40 and len(result.losses) == 40
    assert np.mean(result.losses[-10:]) < np.mean(result.losses[:10]) - 0.005, result.losses
    assert np.isfinite(result.best_score) and result.best_step in (0, 10, 20, 30, 40)
    # Resume continues from the checkpoint's step.
    more = train(model, [video], _cfg(45), checkpoint=tmp_path / "m.ckpt.pt", resume=True)
    assert more.steps == 45 and len(more.losses) == 5


def test_teacher_loss_falls_and_selection_follows_the_teacher(rig_video: Path, cache_dir: Path) -> None:
    torch.set_num_threads(1)
    video = decode_video(rig_video, size=16, face=True, cache_dir=cache_dir)
    # A teacher that says 90 bpm where the rig's face pulses at 72: the student must follow the teacher.
    teacher = np.sin(2 * np.pi * 1.5 * np.arange(len(video.frames)) / video.fps).astype(np.float32)
    taught = dataclasses.replace(video, teacher=teacher)
    torch.manual_seed(0)
    model = PhysNet(TINY)
    cfg = dataclasses.replace(_cfg(40), contrastive_weight=0.0, teacher_weight=1.0)
    result = train(model, [taught], cfg)
    assert np.mean(result.losses[-10:]) < 0.5 * np.mean(result.losses[:10]), result.losses
    assert result.best_score < 0.5 * np.mean(result.losses[:5])  # the selection score is the teacher distance
    with torch.no_grad():
        x = torch.from_numpy(ClipSampler([video], cfg, random.Random(3)).sample().anchor[None])
        psd = band_psd(model(x).double(), 30.0, n_fft=4096)[0]
    freqs = np.fft.rfftfreq(4096, 1 / 30.0) * 60
    assert freqs[(freqs >= 40) & (freqs <= 180)][int(psd.argmax())] == pytest.approx(90.0, abs=6.0)
    with pytest.raises(ValueError, match="teacher"):
        train(PhysNet(TINY), [video], cfg)  # no teacher pulse on the video


def test_export_parity_round_trip_and_runtime_estimator(rig_video: Path, cache_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    video = decode_video(rig_video, size=16, face=True, cache_dir=cache_dir)
    model = PhysNet(TINY)
    train(model, [video], _cfg(3))
    out = tmp_path / "tiny.onnx"
    export_onnx(model, out, chunk_frames=64, fs_hz=30.0, provenance={"videos": ["rig.avi"]})
    assert parity(model, out) < 1e-4
    again, meta = load_model(out)
    assert meta["rppg.size"] == "16x16" and meta["rppg.chunk_frames"] == "64" and meta["rppg.colour"] == "yuv"
    assert json.loads(meta["rppg.provenance"]) == {"videos": ["rig.avi"]}
    x = torch.randn(1, 3, 64, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    pipeline = build_heart_rate_pipeline(HeartRateConfig(method="onnx", model=out), 30.0)
    for frame in _rig_frames(SECONDS):
        pipeline.push(frame.image, frame.t_mono)
    reading = pipeline.reading()
    assert reading.method == "onnx" and reading.bpm is not None and np.isfinite(reading.bpm), reading.flags


def test_train_command_exports_and_personalises(
    rig_video: Path, cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--size", "16", "--width", "2", "--chunk-frames", "32", "--cache", str(cache_dir)]
    general = tmp_path / "general.onnx"
    assert main(["train", "rppg", str(rig_video), "--out", str(general), "--steps", "2", *common]) == 0
    assert "max |diff|" in capsys.readouterr().out
    personal = tmp_path / "personal.onnx"
    argv = ["train", "rppg", str(rig_video), "--out", str(personal), "--init", str(general), "--steps", "1", *common]
    assert main(argv) == 0
    _, meta = load_model(personal)
    provenance = json.loads(meta["rppg.provenance"])
    assert provenance["init_file"] == "general.onnx" and provenance["init"]["steps"] == 2
    assert provenance["videos"] == ["rig.avi"] and provenance["steps"] == 1


def test_train_command_with_a_teacher_caches_its_pulse_and_records_it(
    rig_video: Path, cache_dir: Path, tmp_path: Path, shared_data: Path
) -> None:
    teacher = shared_data.parent / "models" / "me-rppg" / "model.onnx"
    if not teacher.is_file():
        pytest.skip(f"{teacher} absent (ME-rPPG is not shipped; see README)")
    pulse = teacher_pulse(rig_video, teacher, face=True, cache_dir=cache_dir)
    video = decode_video(rig_video, size=16, face=True, cache_dir=cache_dir)
    assert pulse.shape == (len(video.frames),) and np.isfinite(pulse[video.valid]).mean() > 0.99
    cached = list(cache_dir.glob("*.teacher.npz"))
    assert len(cached) == 1
    np.testing.assert_array_equal(np.load(cached[0])["pulse"], pulse)
    stamp = cached[0].stat().st_mtime_ns
    out = tmp_path / "student.onnx"
    argv = ["train", "rppg", str(rig_video), "--out", str(out), "--steps", "2", "--teacher", str(teacher)]
    common = ["--size", "16", "--width", "2", "--chunk-frames", "32", "--cache", str(cache_dir)]
    assert main([*argv, *common]) == 0
    assert cached[0].stat().st_mtime_ns == stamp  # the cached teacher pulse was used, not recomputed
    provenance = json.loads(load_model(out)[1]["rppg.provenance"])
    assert provenance["teacher"]["file"] == "model.onnx" and provenance["teacher"]["sha256"] == file_digest(teacher)
    assert provenance["contrastive_weight"] == 0.0


def test_train_command_without_a_budget_is_refused(rig_video: Path, tmp_path: Path) -> None:
    assert main(["train", "rppg", str(rig_video), "--out", str(tmp_path / "x.onnx")]) == 2
