"""The confidence model of Gideon & Stent (2021): one confidence per STFT frame of a pulse window.

Input: N × 33 × T, the short-time features of :mod:`fusion.confidence` (nperseg 64 → 33 bins, T
frames). Eight 1-D convolutions over time (kernel 5, same padding, ELU between them; the last gives one
channel), then a sigmoid: N × T confidences in (0, 1). Any T works (fully convolutional). PyTorch is
needed only to train (the optional extra ``[train]``); the runtime runs the exported ONNX file.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConfidenceNet"]


class ConfidenceNet(nn.Module):
    """Eight Conv1d (k = 5) with ELU, sigmoid output.

    Args:
        bins: input channels (STFT bins: ``nperseg // 2 + 1``).
        width: channels of the hidden layers.
        layers: convolutions in all (the paper: 8).
    """

    def __init__(self, bins: int = 33, width: int = 16, layers: int = 8) -> None:
        super().__init__()
        if bins < 2 or width < 1 or layers < 2:
            raise ValueError(f"bins ≥ 2, width ≥ 1 and layers ≥ 2, got {bins}, {width}, {layers}")
        self.bins, self.width, self.layers = bins, width, layers
        convs: list[nn.Module] = []
        for i in range(layers):
            convs.append(nn.Conv1d(bins if i == 0 else width, 1 if i == layers - 1 else width, 5, padding=2))
            if i < layers - 1:
                convs.append(nn.ELU())
        self.body = nn.Sequential(*convs)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """N × bins × T features → N × T logits (the training loss works on their log-sigmoid)."""
        # Features sum to 1 per frame: scaled to unit mean per bin so that default initialisation fits.
        out: torch.Tensor = self.body(features * self.bins)[:, 0]
        return out

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """N × bins × T features → N × T confidences."""
        return torch.sigmoid(self.logits(features))
