"""What every ``vitaledge train`` target checks first: PyTorch is there, the output is an ONNX file,
and the thread count is set."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from fusion.errors import ConfigError

__all__ = ["torch_for_training"]


def torch_for_training(out: Path, threads: int) -> ModuleType:
    """The ``torch`` module, set to ``threads`` threads, once ``out`` is known to name an ``.onnx`` file.

    Raises:
        ConfigError: PyTorch is not installed (the ``[train]`` extra), or ``out`` is not ``*.onnx``.
    """
    try:
        import torch
    except ImportError as exc:
        raise ConfigError("training needs PyTorch: pip install 'vitaledge[train]'") from exc
    if out.suffix != ".onnx":
        raise ConfigError(f"--out must name an .onnx file, got {out}")
    torch.set_num_threads(threads)
    return torch
