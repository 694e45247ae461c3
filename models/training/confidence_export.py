"""ONNX export of the confidence model with the contract ``fusion.confidence`` reads, and the parity check.

Besides the runtime's keys (``confidence.*``, see :mod:`fusion.confidence`) the file carries
``confidence.arch`` (width and layers, JSON) and ``confidence.provenance`` (what it was trained on and
how its threshold was chosen, JSON).
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import torch

from fusion.confidence import FEATURES, HOP, NPERSEG
from models.confidence_net import ConfidenceNet

__all__ = ["confidence_parity", "export_confidence"]


def export_confidence(
    model: ConfidenceNet, path: Path, *, fs_hz: float, threshold: float, provenance: Mapping[str, object]
) -> None:
    """Write ``model`` as ONNX (input ``features`` N × bins × T, T dynamic; output ``confidence`` N × T).

    Raises:
        ValueError: the threshold is outside [0, 1] or the rate is not positive.
    """
    if not 0.0 <= threshold <= 1.0 or not fs_hz > 0:
        raise ValueError(f"threshold must be in [0, 1] and fs_hz > 0, got {threshold}, {fs_hz}")
    model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13 warns that this TorchScript exporter is legacy; the torch.export one needs onnxscript.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, model.bins, 15),),
            buf,  # type: ignore[arg-type]  # a file object works; the stub names only paths
            input_names=["features"],
            output_names=["confidence"],
            dynamic_axes={"features": {0: "N", 2: "T"}, "confidence": {0: "N", 1: "T"}},
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    meta = {
        "confidence.features": FEATURES,
        "confidence.nperseg": str(NPERSEG),
        "confidence.hop": str(HOP),
        "confidence.fs_hz": f"{fs_hz:g}",
        "confidence.threshold": repr(float(threshold)),
        "confidence.arch": json.dumps({"bins": model.bins, "width": model.width, "layers": model.layers}),
        "confidence.provenance": json.dumps(provenance, sort_keys=True),
    }
    onnx.helper.set_model_props(proto, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))


def confidence_parity(model: ConfidenceNet, path: Path, *, frames: int = 15, seed: int = 0) -> float:
    """Maximum absolute difference between onnxruntime's and PyTorch's confidences on random features."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(seed).dirichlet(np.ones(model.bins), size=(2, frames)).transpose(0, 2, 1)
    x = x.astype(np.float32)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = np.asarray(session.run(None, {"features": x})[0])
    return float(np.abs(got.reshape(expected.shape) - expected).max())
