"""The learned confidence: STFT features, the ONNX runner and its contract, training, and the wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edge.build import build_heart_rate_pipeline
from edge.config import HeartRateConfig
from edge.evaluation.folds import flag_threshold
from fusion.confidence import HOP, NPERSEG, LearnedConfidence, stft_frames
from fusion.errors import ConfigError
from fusion.heartrate import HeartRateEstimator
from fusion.hrtrack import DEFAULT_TRACKER
from fusion.rppg import LOW_CONFIDENCE, LOW_SUPPORT
from models.confidence_net import ConfidenceNet
from models.training.confidence import (
    ConfidenceTrainConfig,
    TrainingWindows,
    train_confidence_net,
    window_confidence,
)
from models.training.confidence_export import confidence_parity, export_confidence

FS_HZ = 30.0
_N = int(10 * FS_HZ)


def _pulse(bpm: float, n: int = _N, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS_HZ
    return np.sin(2 * np.pi * bpm / 60 * t) + noise * rng.standard_normal(n)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[ConfidenceNet, Path]:
    torch.manual_seed(0)
    model = ConfidenceNet(width=4)
    path = tmp_path_factory.mktemp("conf") / "conf.onnx"
    export_confidence(model, path, fs_hz=FS_HZ, threshold=0.4, provenance={"test": True})
    return model, path


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _with_meta(src: Path, dst: Path, **changes: str | None) -> Path:
    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(dst))
    return dst


def test_stft_features_have_33_bins_and_a_sinusoid_peaks_where_it_is() -> None:
    frames = stft_frames(np.column_stack([_pulse(72.0), _pulse(72.0, noise=0.3)]), FS_HZ)
    t_frames = 1 + (_N - NPERSEG) // HOP
    assert frames.features.shape == (NPERSEG // 2 + 1, t_frames) == (33, 15)
    assert frames.bpm.shape == (t_frames,)
    np.testing.assert_allclose(frames.features.sum(axis=0), 1.0, rtol=1e-5)  # each frame normalised
    # 72 bpm = 1.2 Hz; bins are 30/64 = 0.47 Hz wide: the peak is bin 2 or 3 in every frame.
    assert set(np.argmax(frames.features, axis=0)) <= {2, 3}
    np.testing.assert_allclose(frames.bpm, 72.0, atol=1.5)


def test_stft_frames_refuse_a_window_shorter_than_a_segment() -> None:
    with pytest.raises(ValueError, match="≥ 64 samples"):
        stft_frames(np.zeros(40), FS_HZ)


def test_export_parity_and_the_runner_gives_the_mean_of_the_frames(tiny_model: tuple[ConfidenceNet, Path]) -> None:
    model, path = tiny_model
    assert confidence_parity(model, path) < 1e-4
    runner = LearnedConfidence(_session(path), fs_hz=FS_HZ)
    assert runner.threshold == pytest.approx(0.4)
    window = np.column_stack([_pulse(80.0, noise=0.5), _pulse(80.0, noise=0.5, seed=1)])
    per_frame = runner.frame_confidences(window)
    with torch.no_grad():
        expected = model(torch.from_numpy(stft_frames(window, FS_HZ).features[None]))[0].numpy()
    np.testing.assert_allclose(per_frame, expected, atol=1e-4)
    assert runner(window) == pytest.approx(float(expected.mean()), abs=1e-4)
    assert 0.0 < runner(window) < 1.0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"confidence__threshold": None}, "lacks confidence.threshold"),
        ({"confidence__features": "mel"}, "confidence.features must be 'stft_frame_sum'"),
        ({"confidence__hop": "sixteen"}, "confidence.hop must be an integer"),
        ({"confidence__threshold": "1.5"}, r"threshold must be in \[0, 1\]"),
        ({"confidence__fs_hz": "60"}, "trained at 60 Hz"),
        ({"confidence__nperseg": "128"}, "N × 65 × T"),
    ],
)
def test_a_broken_contract_is_refused_naming_what_is_wrong(
    tiny_model: tuple[ConfidenceNet, Path], tmp_path: Path, changes: dict[str, str | None], message: str
) -> None:
    path = _with_meta(tiny_model[1], tmp_path / "broken.onnx", **changes)
    with pytest.raises(ValueError, match=message):
        LearnedConfidence(_session(path), fs_hz=FS_HZ)


def test_estimator_publishes_the_learned_confidence_and_keeps_its_rate() -> None:
    seen: list[tuple[int, int]] = []

    def constant(window: np.ndarray) -> float:
        seen.append(window.shape)
        return 0.123

    x = _pulse(75.0, n=int(20 * FS_HZ), noise=0.2)
    results = []
    for confidence in (None, constant):
        est = HeartRateEstimator(FS_HZ, channels=1, tracker=DEFAULT_TRACKER, confidence=confidence)
        for i, v in enumerate(x):
            est.push(v, round(i * 1e9 / FS_HZ))
        results.append(est.result())
    spectral, learned = results
    assert spectral is not None and learned is not None
    assert learned.confidence == pytest.approx(0.123) != spectral.confidence
    assert learned.bpm == spectral.bpm and learned.t_mono == spectral.t_mono
    assert seen and all(s == (_N, 1) for s in seen)  # the whole window, every channel


def test_choose_threshold_keeps_the_most_windows_within_the_budget() -> None:
    conf = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    err = np.array([1.0, 1.0, 4.0, 0.0, 20.0])
    # MAE of the top k: 1, 1, 2, 1.5, 5.2 → the top four fit a 2 bpm budget.
    assert flag_threshold(conf, err, 2.0) == pytest.approx(0.6)
    assert flag_threshold(conf, err, 100.0) == 0.0
    assert flag_threshold(conf, err, 0.5) > 0.9  # nothing fits: everything is flagged
    assert flag_threshold(np.array([1.0, 1.0]), np.array([5.0, 3.0]), 2.0) == 1.0  # a valid threshold still


def _windows(seed: int) -> TrainingWindows:
    """Half the windows a clean pulse at the reference, half noise whose frames' rates are wrong."""
    rng = np.random.default_rng(seed)
    feats, bpms, refs = [], [], []
    for k in range(40):
        ref = float(rng.uniform(55, 100))
        x = _pulse(ref, seed=k) if k % 2 else rng.standard_normal(_N)
        frames = stft_frames(x, FS_HZ)
        feats.append(frames.features)
        bpms.append(frames.bpm)
        refs.append(ref)
    return TrainingWindows(np.array(feats), np.array(bpms), np.array(refs))


@pytest.mark.parametrize("target", ["frames", "correct"])
def test_a_few_training_steps_lower_the_loss_and_trust_clean_windows_more(target: str) -> None:
    torch.set_num_threads(1)
    data = _windows(0)
    cfg = ConfidenceTrainConfig(width=8, steps=80, groups=8, group=4, seed=0, target=target)  # type: ignore[arg-type]  # a literal
    result = train_confidence_net([data], cfg)
    assert np.mean(result.losses[-10:]) < 0.6 * np.mean(result.losses[:10])
    test = _windows(1)
    conf = window_confidence(result.model, test.features)
    assert conf[1::2].mean() > conf[0::2].mean()  # clean windows (odd) over noise (even)


def test_published_target_gives_every_frame_its_windows_published_rate() -> None:
    from models.training.confidence import ClipWindows, PublishedWindows

    data = _windows(2)
    n = len(data.reference_bpm)
    pw = PublishedWindows(
        np.arange(n, dtype=float), data.reference_bpm + 3.0, data.reference_bpm, np.zeros(n), data.features, data.bpm
    )
    train = ClipWindows("c", data, pw).published_as_training()
    assert train.bpm.shape == data.bpm.shape
    np.testing.assert_array_equal(train.bpm[:, 0], data.reference_bpm + 3.0)
    np.testing.assert_array_equal(train.bpm[:, -1], train.bpm[:, 0])


def test_config_brings_the_model_and_its_threshold_to_the_pipeline(tiny_model: tuple[ConfidenceNet, Path]) -> None:
    pipeline = build_heart_rate_pipeline(HeartRateConfig(method="pos", confidence_model=tiny_model[1]), FS_HZ)
    assert pipeline.low_confidence == pytest.approx(0.4)
    default = build_heart_rate_pipeline(HeartRateConfig(method="pos"), FS_HZ)
    assert default.low_confidence == LOW_SUPPORT  # the tracker's support, with its own threshold
    blend = build_heart_rate_pipeline(HeartRateConfig(method="pos", tracker=None), FS_HZ)
    assert blend.low_confidence == LOW_CONFIDENCE  # the median blend's spectral confidence


def test_config_refuses_a_missing_file_or_a_model_that_is_not_a_confidence_model(
    tiny_model: tuple[ConfidenceNet, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"heart_rate\.confidence_model: no such file"):
        build_heart_rate_pipeline(HeartRateConfig(confidence_model=tmp_path / "absent.onnx"), FS_HZ)
    stripped = _with_meta(tiny_model[1], tmp_path / "plain.onnx", confidence__features=None)
    with pytest.raises(ConfigError, match=r"not a confidence model: metadata lacks confidence\.features"):
        build_heart_rate_pipeline(HeartRateConfig(confidence_model=stripped), FS_HZ)
