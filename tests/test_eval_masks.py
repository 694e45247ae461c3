"""``vitaledge eval masks``: PNG and COCO raters, skin masks, the JSON layout, the plot."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as coco_mask

from edge.cli import main
from tests.mask_raters import latent_masks


def _write_raters(tmp: Path, images: dict[str, np.ndarray]) -> list[Path]:
    r = next(iter(images.values())).shape[0]
    dirs = [tmp / f"r{j}" for j in range(r)]
    for d in dirs:
        d.mkdir()
    for name, masks in images.items():
        for j, d in enumerate(dirs):
            cv2.imwrite(str(d / f"{name}.png"), masks[j].astype(np.uint8) * 255)
    return dirs


def test_json_layout_coco_and_skin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    images = {f"img{i}": latent_masks(rng, (48, 64), raters=3, smooth_px=4.0) for i in range(4)}
    images["sat"] = np.ones((3, 48, 64), bool)  # ≥ 3 raters > 95 % positive: excluded from ICC
    dirs = _write_raters(tmp_path, images)
    # The third rater as a COCO file (RLE), same masks: the figures must not change.
    coco = {"images": [], "annotations": []}
    for i, (name, masks) in enumerate(images.items()):
        coco["images"].append({"id": i, "file_name": f"{name}.png", "height": 48, "width": 64})
        rle = coco_mask.encode(np.asfortranarray(masks[2].astype(np.uint8)))
        coco["annotations"].append({"id": i, "image_id": i, "segmentation": {
            "size": rle["size"], "counts": rle["counts"].decode()}})
    coco_path = tmp_path / "r2.json"
    coco_path.write_text(json.dumps(coco))
    plot = tmp_path / "out.png"
    args = ["eval", "masks", "--rater", str(dirs[0]), "--rater", str(dirs[1]), "--json"]
    assert main([*args, "--rater", str(dirs[2]), "--plot", str(plot)]) == 0
    from_png = json.loads(capsys.readouterr().out)
    assert main([*args, "--rater", str(coco_path)]) == 0
    from_coco = json.loads(capsys.readouterr().out)
    for key in ("images", "icc_pixel_mean", "icc_pixel_latent_mean", "alpha_pixel_mean", "icc_area", "icc_extent",
                "icc_extent_ci", "excluded", "raters", "leave_one_out"):
        assert key in from_png
    assert set(from_png["icc_area"]) == {"10", "15", "20"}
    assert from_png["excluded"] == ["sat"]
    assert [r["name"] for r in from_png["raters"]] == ["r0", "r1", "r2", "naive"]
    assert len(from_png["leave_one_out"]) == 3
    assert from_coco["icc_pixel_mean"] == from_png["icc_pixel_mean"]
    assert from_coco["alpha_pixel_mean"] == from_png["alpha_pixel_mean"]
    assert cv2.imread(str(plot)) is not None
    # A skin mask limits the pixels scored.
    skin = tmp_path / "skin"
    skin.mkdir()
    for name in images:
        s = np.zeros((48, 64), np.uint8)
        s[:, :32] = 255
        cv2.imwrite(str(skin / f"{name}.png"), s)
    assert main([*args, "--rater", str(dirs[2]), "--skin", str(skin)]) == 0
    assert all(im["pixels"] == 48 * 32 for im in json.loads(capsys.readouterr().out)["images"])


def test_missing_image_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dirs = _write_raters(tmp_path, {"a": np.zeros((2, 8, 8), bool), "b": np.zeros((2, 8, 8), bool)})
    (dirs[1] / "b.png").unlink()
    assert main(["eval", "masks", "--rater", str(dirs[0]), "--rater", str(dirs[1])]) == 1
    assert "no mask for b" in capsys.readouterr().err


def test_product_as_a_rater_beside_its_dilated_and_eroded_masks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two frames of the simulated rig (120×160 thermal); raters: the product's face mask dilated and eroded,
    # so all three masks nest (this case once hung the latent fit's CI search past pytest's timeout).
    from drivers.synthetic import SimulatedRig
    from edge.evaluation.masks import product_mask
    from fusion.samples import ThermalFrame
    from fusion.thermal import ThermalMeasurer
    from models.face_detectors import HaarFaceDetector

    frames = tmp_path / "frames"
    frames.mkdir()
    names = []
    for s in SimulatedRig(seed=2, webcam=False, wristband=False).stream(6.0):
        if isinstance(s, ThermalFrame) and not s.ffc and s.visible is not None and s.seq % 2 == 0:
            names.append(f"f{s.seq}")
            np.savez(frames / f"{names[-1]}.npz", celsius=s.celsius, visible=s.visible)
            if len(names) == 2:
                break
    detector = HaarFaceDetector()
    kernel = np.ones((5, 5), np.uint8)
    dirs = [tmp_path / "dilated", tmp_path / "eroded"]
    for d in dirs:
        d.mkdir()
    for name in names:
        face = product_mask(frames, name, "face", lambda: ThermalMeasurer(detector)).astype(np.uint8)
        assert face.sum() > 500
        cv2.imwrite(str(dirs[0] / f"{name}.png"), cv2.dilate(face, kernel) * 255)
        cv2.imwrite(str(dirs[1] / f"{name}.png"), cv2.erode(face, kernel) * 255)
    assert main(["eval", "masks", "--rater", str(dirs[0]), "--rater", str(dirs[1]), "--product",
                 "--frames", str(frames), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in report["raters"]] == ["dilated", "eroded", "product", "naive"]
    product = report["raters"][2]
    # The others' consensus (strictly more than half of two) is the eroded mask, inside the product's.
    assert product["tpr"]["mean"] == 1.0 and product["ppv"]["mean"] < 1.0
    for im in report["images"]:
        lo, hi = im["icc_pixel_latent_ci"]
        assert 0.0 < lo < im["icc_pixel_latent"] < hi < 1.0  # the nested limit, with its closed-form CI
        assert im["sigma_pixel"] is None  # infinite: no finite fit exists
