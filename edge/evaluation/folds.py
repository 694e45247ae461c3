"""Leave-one-out fold selection: every choice is made on the other clips, scored on the left-out one.

The caller gives candidate settings and a loss that scores one setting on a set of clips (by index);
for each clip, the setting with the lowest loss on all the *other* clips is chosen, and only then is
the left-out clip scored with it. The loss never receives the left-out clip's index, so no choice can
see the clip it is scored on. Losses work on cached per-clip results (see
:class:`edge.evaluation.rppg_data.ClipRun`): each candidate costs a replay, never a decode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["Fold", "flag_threshold", "leave_one_out"]

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Fold(Generic[S]):
    """One fold: the clip left out, the clips the choice was made on, and what was chosen.

    Attributes:
        held_out: index of the left-out clip.
        training: indices of the clips the setting was chosen on.
        chosen: the setting with the lowest training loss (the first of equals).
        training_loss: its loss on the training clips.
    """

    held_out: int
    training: tuple[int, ...]
    chosen: S
    training_loss: float


def leave_one_out(n_items: int, candidates: Sequence[S], loss: Callable[[Sequence[int], S], float]) -> list[Fold[S]]:
    """One fold per item: the candidate minimising ``loss(training indices, candidate)``.

    Args:
        n_items: number of clips (at least 2).
        candidates: settings to choose from (at least one), in order of preference on ties.
        loss: a setting's loss on the given clips (lower is better; NaN counts as worst).

    Raises:
        ValueError: fewer than two items or no candidates.
    """
    if n_items < 2:
        raise ValueError(f"leave-one-out needs at least 2 clips, got {n_items}")
    if not candidates:
        raise ValueError("leave-one-out needs at least one candidate setting")
    folds = []
    for held_out in range(n_items):
        training = tuple(i for i in range(n_items) if i != held_out)
        best, best_loss = candidates[0], math.inf
        for k, c in enumerate(candidates):
            value = loss(training, c)
            value = math.inf if math.isnan(value) else value
            if k == 0 or value < best_loss:
                best, best_loss = c, value
        folds.append(Fold(held_out=held_out, training=training, chosen=best, training_loss=best_loss))
    return folds


def flag_threshold(
    confidence: npt.NDArray[np.float64], abs_error_bpm: npt.NDArray[np.float64], max_mae_bpm: float
) -> float:
    """The lowest confidence threshold whose windows at or above it have MAE ≤ ``max_mae_bpm`` (the most
    windows published unflagged within that error); chosen on training clips only.

    Returns 0 when every window may be published, and just above the highest confidence (at most 1)
    when none may.
    """
    order = np.argsort(-confidence, kind="stable")
    c, e = confidence[order], abs_error_bpm[order]
    mae = np.cumsum(e) / np.arange(1, len(e) + 1)  # MAE of the k+1 most confident windows
    ok = np.flatnonzero(mae <= max_mae_bpm)
    if len(ok) == 0:
        return min(1.0, float(np.nextafter(c[0], np.inf))) if len(c) else 1.0
    k = int(ok[-1])
    while k + 1 < len(c) and c[k + 1] == c[k]:  # windows tied at the threshold are all unflagged
        k += 1
    if k == len(c) - 1:
        return 0.0
    return float(c[k]) if mae[k] <= max_mae_bpm else min(1.0, float(np.nextafter(c[k], np.inf)))
