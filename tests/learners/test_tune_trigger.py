"""When the learner deployment starts a tune job by itself."""

from __future__ import annotations

from flywheel.learners.tune_trigger import TuneTrigger


def test_off_by_default_whatever_happens():
    t = TuneTrigger()
    assert not t.enabled
    assert t.due({"a": 0}, {"a": 0}) == [] and t.due({"a": 10**6}, {"a": 5}) == []


def test_every_n_outcomes_per_workflow_counted_from_the_last_start():
    t = TuneTrigger(every_outcomes=50)
    assert t.due({"a": 500, "b": 0}, {}) == []  # baseline: what a restarted service had learned
    assert t.due({"a": 549, "b": 60}, {}) == ["b"]
    t.started("b")
    assert t.due({"a": 550, "b": 200}, {}) == ["a"]  # b runs: not due again until it ends
    t.finished("b")
    assert t.due({"a": 550, "b": 109}, {}) == ["a"] and t.due({"a": 550, "b": 110}, {}) == ["a", "b"]


def test_after_a_drift_only_when_asked():
    t = TuneTrigger(after_drift=True)
    assert t.due({"a": 0}, {"a": 1}) == []
    assert t.due({"a": 10**6}, {"a": 1}) == [] and t.due({"a": 10**6}, {"a": 2}) == ["a"]
    t.started("a")
    t.finished("a")
    assert t.due({"a": 10**6}, {"a": 2}) == [] and t.running == frozenset()
