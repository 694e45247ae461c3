"""The one retry policy (edge.retry.Backoff), with an injected random source: growth, cap, reset, jitter."""

from __future__ import annotations

import random

import pytest

from edge.build import build_backoff
from edge.config import load_config
from edge.retry import JITTER, Backoff


class _Extreme(random.Random):
    """Jitter pinned to one end of its range, so the bounds are checked exactly."""

    def __init__(self, high: bool) -> None:
        super().__init__(0)
        self.high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self.high else a


@pytest.mark.parametrize("high", [False, True])
def test_delays_double_up_to_the_cap_within_the_jitter_bounds(high: bool) -> None:
    backoff = Backoff(initial_s=1.0, max_s=8.0, rng=_Extreme(high))
    factor = 1 + JITTER if high else 1 - JITTER
    assert [backoff.next_delay() for _ in range(6)] == pytest.approx([f * factor for f in (1, 2, 4, 8, 8, 8)])


def test_jitter_stays_within_25_percent_and_varies() -> None:
    backoff = Backoff(initial_s=2.0, max_s=2.0, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(1.5 <= d <= 2.5 for d in delays)
    assert min(delays) < 1.6 and max(delays) > 2.4, "the whole ±25 % range is used"


def test_reset_after_success_starts_again() -> None:
    backoff = Backoff(initial_s=0.5, max_s=30.0, rng=_Extreme(high=False))
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.375)
    assert backoff.next_delay() == pytest.approx(0.75)


def test_a_cap_below_the_start_wins_and_bad_delays_are_refused() -> None:
    backoff = Backoff(initial_s=1.0, max_s=0.2, rng=_Extreme(high=True))
    assert [backoff.next_delay() for _ in range(2)] == pytest.approx([0.25, 0.25])
    with pytest.raises(ValueError, match="positive"):
        Backoff(initial_s=0.0)


def test_sources_backoff_max_s_reaches_the_supervisors_policy() -> None:
    cfg = load_config(
        None,
        {
            "sources": [
                {"kind": "e4-server", "backoff_max_s": 5},
                {"kind": "webcam"},
                {"kind": "ble-thermometer", "name": "probe", "address": "AA:BB:CC:DD:EE:FF", "backoff_max_s": 2},
                {"kind": "e4-csv", "name": "csv", "path": "TEMP.csv"},
            ]
        },
    )
    assert [build_backoff(s).max_s for s in cfg.sources] == [5.0, 10.0, 2.0, 30.0]
