"""The modified PhysNet of Gideon & Stent (2021): a 3-D CNN from face-crop video to one pulse value per frame.

PyTorch is needed only to train (the optional extra ``[train]``); the runtime runs the exported ONNX file.

The encoder is PhysNet's: a (1,5,5) stem, then blocks of two (3,3,3) convolutions, each with batch norm and
ELU, separated by average pooling (spatial only first, then space and time). Instead of PhysNet's
transposed convolutions the decoder doubles the time axis by linear interpolation and applies a (3,1,1)
convolution, once per temporal pooling; the space left is averaged away and a 1×1×1 convolution gives one
channel. ``depth`` (temporal poolings) and ``width`` (channels of the stem) size it: the paper's model is
``PhysNetConfig(size=64, width=32, depth=2)`` with 64 channels inside; :data:`EDGE` trains on a CPU.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import torch
from torch import nn

__all__ = ["EDGE", "PAPER", "PhysNet", "PhysNetConfig"]


@dataclass(frozen=True, slots=True)
class PhysNetConfig:
    """The network's size.

    Attributes:
        size: crop height and width in pixels.
        width: channels of the stem; the blocks after it have twice as many.
        depth: temporal poolings (each halves T; the decoder doubles it back), so T must divide by 2**depth.
        blocks: convolution blocks after the stem, each followed by a pooling (the first spatial only).
    """

    size: int = 36
    width: int = 8
    depth: int = 2
    blocks: int = 3

    def __post_init__(self) -> None:
        if self.size < 8 or self.width < 1 or self.depth < 0 or self.blocks < self.depth + 1:
            raise ValueError(f"invalid PhysNet size {self}: need size ≥ 8, width ≥ 1, blocks > depth ≥ 0")
        if self.size // 2**self.blocks < 1:
            raise ValueError(f"crop {self.size} px is too small for {self.blocks} spatial poolings")

    @property
    def frames_multiple(self) -> int:
        """T must be a multiple of this."""
        return int(2**self.depth)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PhysNetConfig:
        return cls(**{k: int(v) for k, v in json.loads(text).items()})


EDGE = PhysNetConfig(size=36, width=8, depth=2, blocks=3)
PAPER = PhysNetConfig(size=64, width=32, depth=2, blocks=4)


def _conv(c_in: int, c_out: int, kernel: tuple[int, int, int]) -> nn.Sequential:
    padding = (kernel[0] // 2, kernel[1] // 2, kernel[2] // 2)
    return nn.Sequential(nn.Conv3d(c_in, c_out, kernel, padding=padding), nn.BatchNorm3d(c_out), nn.ELU())


class PhysNet(nn.Module):
    """Input N×3×T×H×W (YUV, temporally z-normalised), output N×T: the pulse, arbitrary scale.

    Args:
        config: the network's size.
    """

    def __init__(self, config: PhysNetConfig = EDGE) -> None:
        super().__init__()
        self.config = config
        c = config.width
        layers: list[nn.Module] = [_conv(3, c, (1, 5, 5))]
        c_in = c
        for i in range(config.blocks):
            # The first pooling is spatial only (PhysNet's); the next `depth` also halve time.
            temporal = 1 <= i <= config.depth
            layers.append(nn.AvgPool3d((2, 2, 2) if temporal else (1, 2, 2)))
            layers += [_conv(c_in, 2 * c, (3, 3, 3)), _conv(2 * c, 2 * c, (3, 3, 3))]
            c_in = 2 * c
        self.encoder = nn.Sequential(*layers)
        self.decoder = nn.ModuleList(_conv(c_in, c_in, (3, 1, 1)) for _ in range(config.depth))
        self.head = nn.Conv3d(c_in, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.encoder(x)
        for conv in self.decoder:
            y = nn.functional.interpolate(y, scale_factor=(2.0, 1.0, 1.0), mode="trilinear", align_corners=False)
            y = conv(y)
        y = y.mean(dim=(3, 4), keepdim=True)  # adaptive spatial pooling to 1×1
        out: torch.Tensor = self.head(y)
        return out.flatten(1)
