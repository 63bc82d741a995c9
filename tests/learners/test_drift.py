"""DriftMonitor: ADWIN per arm on its reward."""

from __future__ import annotations

import random

import pytest

from flywheel.learners.drift import DriftEvent, DriftMonitor


def test_detects_an_abrupt_change_within_a_bounded_number_of_updates() -> None:
    rng = random.Random(4)
    monitor = DriftMonitor()
    change = 1500
    detected_at = None
    for i in range(3000):
        reward = float(rng.random() < (0.9 if i < change else 0.55))
        if monitor.update("strong", reward) and detected_at is None:
            detected_at = i
    assert detected_at is not None
    assert change <= detected_at <= change + 150
    event = monitor.events[0]
    assert isinstance(event, DriftEvent)
    assert event.arm == "strong" and event.detector == "adwin"
    assert event.arm_updates == detected_at + 1
    assert event.mean_before > 0.8 > 0.7 > event.mean_after


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_detection_on_a_stationary_stream(seed: int) -> None:
    rng = random.Random(seed)
    monitor = DriftMonitor()
    means = {"fast": 0.7, "balanced": 0.8, "strong": 0.9}
    for i in range(30000):
        arm = ("fast", "balanced", "strong")[i % 3]
        assert monitor.update(arm, float(rng.random() < means[arm])) is False
    assert monitor.events == []
    assert monitor.n_updates == 30000
    assert monitor.predict_one("strong") == pytest.approx(0.9, abs=0.03)


def test_arms_are_watched_separately() -> None:
    rng = random.Random(9)
    monitor = DriftMonitor()
    flags: dict[str, list[int]] = {"a": [], "b": []}
    for i in range(4000):
        arm = "a" if i % 2 else "b"
        p = 0.2 if arm == "b" and i >= 2000 else 0.85
        if monitor.update(arm, float(rng.random() < p)):
            flags[arm].append(i)
            assert monitor.drift_detected
    assert flags["a"] == []
    assert flags["b"] and 2000 <= flags["b"][0] <= 2200
    assert [e.arm for e in monitor.events] == ["b"] * len(flags["b"])
    assert monitor.events[0].at_update == flags["b"][0] + 1


def test_a_graded_reward_drop_is_detected() -> None:
    rng = random.Random(2)
    monitor = DriftMonitor()
    found = [i for i in range(2000) if monitor.update("x", rng.gauss(0.8 if i < 1000 else 0.6, 0.1))]
    assert found and 1000 <= found[0] <= 1060
