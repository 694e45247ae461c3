"""Leave-one-out fold selection: a fold never sees its own clip, and picks what its training data favour."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from edge.evaluation.folds import leave_one_out


def test_a_fold_never_sees_its_own_clip() -> None:
    seen: list[tuple[int, ...]] = []

    def loss(training: Sequence[int], setting: str) -> float:
        seen.append(tuple(training))
        return 0.0

    folds = leave_one_out(5, ["a", "b", "c"], loss)
    assert [f.held_out for f in folds] == [0, 1, 2, 3, 4]
    assert len(seen) == 5 * 3
    for f in folds:
        assert f.held_out not in f.training and sorted(f.training) == [i for i in range(5) if i != f.held_out]
    # Each fold's three loss calls (one per candidate) got exactly that fold's training set.
    for k, f in enumerate(folds):
        assert seen[3 * k : 3 * k + 3] == [f.training] * 3


def test_each_fold_picks_the_setting_best_on_the_other_clips() -> None:
    # Clip i's own best setting is i % 2; a fold must follow the majority of the *other* clips.
    own_best = [0, 0, 0, 1, 1]

    def loss(training: Sequence[int], setting: int) -> float:
        return sum(own_best[i] != setting for i in training)

    folds = leave_one_out(len(own_best), [0, 1], loss)
    # Leaving out a 0-clip leaves two 0s and two 1s: a tie, the first candidate wins.
    assert [f.chosen for f in folds] == [0, 0, 0, 0, 0]
    assert [f.training_loss for f in folds] == [2, 2, 2, 1, 1]


def test_nan_loss_is_never_chosen_over_a_number() -> None:
    folds = leave_one_out(2, ["broken", "ok"], lambda training, s: float("nan") if s == "broken" else 3.0)
    assert all(f.chosen == "ok" for f in folds)


@pytest.mark.parametrize(("n", "candidates"), [(1, ["a"]), (3, [])])
def test_degenerate_folds_are_refused(n: int, candidates: list[str]) -> None:
    with pytest.raises(ValueError, match="leave-one-out needs"):
        leave_one_out(n, candidates, lambda training, s: 0.0)
