"""ONNX export with the metadata ``fusion.pulse_onnx`` reads, provenance, and loading a model back.

Besides the runtime's keys (``rppg.*``, see ``fusion.pulse_onnx``) the file carries ``rppg.arch`` (the
network's size), ``rppg.provenance`` (what it was trained on, as JSON) and ``rppg.torch_state`` (the
PyTorch weights, base64), so that ``--init`` can start from a shipped ``.onnx`` exactly: the exported
graph has batch norm folded into the convolutions and could not be trained on as it is.
"""

from __future__ import annotations

import base64
import io
import json
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import torch

from models.physnet import PhysNet, PhysNetConfig

__all__ = ["export_onnx", "load_model", "parity"]


def export_onnx(
    model: PhysNet, path: Path, *, chunk_frames: int, fs_hz: float, provenance: Mapping[str, object]
) -> None:
    """Write ``model`` as ONNX for chunks of ``chunk_frames`` frames at ``fs_hz``.

    Raises:
        ValueError: the chunk is not a multiple of the network's temporal stride.
    """
    if chunk_frames % model.config.frames_multiple or chunk_frames < 8:
        raise ValueError(f"chunk of {chunk_frames} frames: need a multiple of {model.config.frames_multiple}, ≥ 8")
    model.eval()
    size = model.config.size
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # torch 2.13 warns that this TorchScript exporter is legacy; the torch.export one needs onnxscript.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, chunk_frames, size, size),),
            buf,  # type: ignore[arg-type]  # a file object works; the stub names only paths
            input_names=["video"],
            output_names=["pulse"],
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    state = io.BytesIO()
    torch.save(model.state_dict(), state)
    meta = {
        "rppg.layout": "NCTHW",
        "rppg.size": f"{size}x{size}",
        "rppg.colour": "yuv",
        "rppg.normalisation": "temporal_z",
        "rppg.chunk_frames": str(chunk_frames),
        "rppg.fs_hz": f"{fs_hz:g}",
        "rppg.arch": model.config.to_json(),
        "rppg.provenance": json.dumps(provenance, sort_keys=True),
        "rppg.torch_state": base64.b64encode(state.getvalue()).decode("ascii"),
    }
    onnx.helper.set_model_props(proto, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(path))


def load_model(path: Path) -> tuple[PhysNet, dict[str, str]]:
    """A trainable PhysNet from a ``.pt`` checkpoint or an ``.onnx`` file this module wrote, and its metadata.

    Raises:
        ValueError: the file holds no PyTorch weights.
    """
    if path.suffix == ".onnx":
        meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        if "rppg.torch_state" not in meta or "rppg.arch" not in meta:
            raise ValueError(f"{path}: not written by vitaledge train (no rppg.torch_state / rppg.arch)")
        state = torch.load(io.BytesIO(base64.b64decode(meta["rppg.torch_state"])), weights_only=True)
        arch = meta["rppg.arch"]
    else:
        ckpt = torch.load(path, weights_only=False)
        state, arch, meta = ckpt["best_state"], ckpt["arch"], {}
    model = PhysNet(PhysNetConfig.from_json(arch))
    model.load_state_dict(state)
    model.eval()  # as exported; train() switches batch norm back to batch statistics
    return model, meta


def parity(model: PhysNet, path: Path, *, seed: int = 0) -> float:
    """Maximum absolute difference between onnxruntime's and PyTorch's outputs on one random chunk."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shape = [int(d) for d in session.get_inputs()[0].shape]
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    got = np.asarray(session.run(None, {"video": x})[0])
    return float(np.abs(got.reshape(expected.shape) - expected).max())
