"""The recovery metric on known routes."""

from __future__ import annotations

from flywheel.eval.recovery import route_recovery
from flywheel.sim import DegradeEvent, load_scenario


def test_recovery_metric_on_known_routes() -> None:
    scenario = load_scenario("abrupt_drift").model_copy(update={"events": [
        DegradeEvent(kind="degrade", at_run=100, model="strong", multiplier=0.5)
    ]})
    # Before tick 100 the oracle and the system route to "a"; from 100 the oracle routes to "b"
    # and the system follows after 50 runs. Windows of 20: at most 2 of 20 may differ -> run 68.
    changed = [(t, "a", "a") for t in range(100)] + [(t, "a" if t < 150 else "b", "b") for t in range(100, 300)]
    steady = [(t, "c", "c") for t in range(300)]
    rec = route_recovery(scenario, {"changed": changed, "steady": steady}, window=20, tolerance=0.1)
    assert rec is not None
    assert rec["affected"] == ["changed"]
    assert rec["workflows"]["changed"]["runs"] == 68
    assert rec["workflows"]["changed"]["ticks"] == 68
    assert rec["workflows"]["changed"]["gap_before"] == 0.0
    assert rec["workflows"]["steady"]["affected"] is False
    assert rec["runs"] == 68 and rec["recovered"] is True
    never = [(t, "a", "a") for t in range(100)] + [(t, "a", "b") for t in range(100, 300)]
    rec = route_recovery(scenario, {"changed": never}, window=20, tolerance=0.1)
    assert rec["recovered"] is False and rec["runs"] is None
