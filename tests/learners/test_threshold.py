"""ThresholdLearner: the lowest threshold meeting the unattended error target, inside its bounds."""

from __future__ import annotations

import random

import pytest

from flywheel.learners.threshold import ThresholdLearner


def _calibrated(rng: random.Random) -> tuple[float, bool]:
    """An agent whose answer of confidence c is right with probability c (confidence uniform)."""
    c = rng.random()
    return c, rng.random() < c


def _overconfident(rng: random.Random) -> tuple[float, bool]:
    """The same agent after a bad release: confidence squeezed up into [0.5, 1], right with 2c - 1.

    The error above t is now 1 - t: a 10% target needs t >= 0.9.
    """
    u = rng.random()
    return 0.5 + u / 2, rng.random() < u


def _true_error_above(t: float, sample: list[tuple[float, bool]]) -> float:
    above = [ok for c, ok in sample if c >= t]
    return sum(not ok for ok in above) / len(above)


@pytest.mark.parametrize("start", [0.3, 0.5, 0.95])
def test_moves_to_the_lowest_threshold_meeting_the_target(start: float) -> None:
    # Calibrated agent: the error above t is (1 - t) / 2, so a 10% target needs t >= 0.8.
    rng = random.Random(11)
    gate = ThresholdLearner(threshold=start, target_error_rate=0.10, low=0.0, high=1.0, half_life=20000)
    assert gate.predict_one() == start  # no evidence yet: the given threshold
    for _ in range(30000):
        gate.learn_one(*_calibrated(rng))
    t = gate.predict_one()
    test_rng = random.Random(5)
    sample = [_calibrated(test_rng) for _ in range(200000)]
    assert 0.80 <= t <= 0.86, t  # at the optimum, give or take the upper-bound margin
    assert _true_error_above(t, sample) <= 0.10
    assert gate.error_rate() <= 0.10 < gate.error_rate(0.7)  # lower thresholds would miss the target
    assert gate.human_share() == pytest.approx(t, abs=0.02)  # the share below t of a uniform confidence


def test_waits_for_evidence_and_clips_the_spec_threshold() -> None:
    gate = ThresholdLearner(threshold=0.99, target_error_rate=0.05, low=0.3, high=0.9, min_samples=100)
    assert gate.predict_one() == 0.9
    for _ in range(99):
        gate.learn_one(0.95, True)
    assert gate.predict_one() == 0.9
    gate.learn_one(0.95, True)
    assert gate.predict_one() == pytest.approx(0.3)  # everything right: as low as allowed


@pytest.mark.parametrize("kind", ["all_wrong", "all_right", "random", "overconfident"])
def test_never_leaves_its_bounds(kind: str) -> None:
    rng = random.Random(3)
    low, high = 0.35, 0.85
    gate = ThresholdLearner(threshold=0.1, target_error_rate=0.05, low=low, high=high, min_samples=10, half_life=200)
    seen = set()
    for i in range(5000):
        c = rng.random()
        correct = {"all_wrong": False, "all_right": True, "random": rng.random() < 0.5}.get(kind)
        if kind == "overconfident":
            c, correct = _overconfident(rng)
        gate.learn_one(c, bool(correct))
        t = gate.predict_one()
        assert low <= t <= high
        seen.add(round(t, 2))
    if kind == "all_wrong":
        assert gate.predict_one() == high
    if kind == "all_right":
        assert gate.predict_one() == pytest.approx(low)


def test_reacts_when_the_agents_calibration_changes() -> None:
    rng = random.Random(21)
    gate = ThresholdLearner(threshold=0.7, target_error_rate=0.10, half_life=1000)
    for _ in range(8000):
        gate.learn_one(*_calibrated(rng))
    before = gate.predict_one()
    assert before < 0.9
    # The agent turns overconfident: the error above t is now 1 - t.
    for _ in range(3000):
        gate.learn_one(*_overconfident(rng))
    after = gate.predict_one()
    test_rng = random.Random(8)
    sample = [_overconfident(test_rng) for _ in range(50000)]
    assert after >= 0.9 and after > before
    assert _true_error_above(after, sample) <= 0.10  # meets the target on the new agent
    assert _true_error_above(before, sample) > 0.10  # the old threshold lets too many errors through


def test_estimates_match_the_counts() -> None:
    gate = ThresholdLearner(threshold=0.5, target_error_rate=0.2, n_bins=10, half_life=10**9, min_samples=1)
    for c, ok in [(0.15, False), (0.25, False), (0.55, True), (0.65, False), (0.85, True), (0.95, True)]:
        gate.learn_one(c, ok)
    assert gate.error_rate(0.5) == pytest.approx(1 / 4)
    assert gate.human_share(0.5) == pytest.approx(2 / 6)
    assert gate.error_rate(0.8) == 0.0
    assert gate.n_seen == 6
    assert gate.error_rate_upper(0.5) > gate.error_rate(0.5)
