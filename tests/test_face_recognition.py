"""dlib's CNN detector and ResNet embedding on real UBFC frames (the privacy and acquisition evaluations' tools)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from models.face_recognition import DlibCnnFaceDetector, DlibFaceEmbedder, embedding_distance, faces_available

pytestmark = pytest.mark.skipif(not faces_available(), reason="dlib / face-recognition-models not installed ([faces])")


def _frame(video: Path, index: int) -> npt.NDArray[np.uint8]:
    capture = cv2.VideoCapture(str(video))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok, f"cannot read frame {index} of {video}"
    return frame


def test_same_person_is_near_and_another_is_far(shared_data: Path) -> None:
    detector, embedder = DlibCnnFaceDetector(max_width=320), DlibFaceEmbedder()
    frames = {
        "s3a": _frame(shared_data / "ubfc/subject3/vid.mp4", 0),
        "s3b": _frame(shared_data / "ubfc/subject3/vid.mp4", 300),
        "s5": _frame(shared_data / "ubfc/subject5/vid.mp4", 0),
    }
    embeddings = {}
    for name, frame in frames.items():
        boxes = detector.detect(frame)
        assert boxes, f"no face found on {name}"
        assert 60 < boxes[0].w < 300, f"implausible face width {boxes[0].w} on {name}"
        embeddings[name] = embedder.embed(frame, boxes[0])
    assert embedding_distance(embeddings["s3a"], embeddings["s3b"]) < 0.4
    assert embedding_distance(embeddings["s3a"], embeddings["s5"]) > 0.6


def test_a_blank_frame_has_no_face() -> None:
    assert DlibCnnFaceDetector().detect(np.full((240, 320, 3), 128, np.uint8)) == []
