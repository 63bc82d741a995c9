"""The learners' view of the ledger: outcomes joined with their own decisions; learning events."""

from flywheel.ledger import Ledger
from flywheel.ledger.records import LearningEvent, OutcomeEvent, StepRecord
from tests.ledger.ledger_helpers import make_run, reward_of


def test_outcomes_join_their_decision_agent_and_gate(ledger: Ledger) -> None:
    gated = make_run("r1", agent_output={"confidence": 0.8, "cost": 0.02, "latency_s": 1.5})
    gated.steps.append(StepRecord("r1", 2, "confidence", "gate", "done", {"passed": True}, 1.0, 1.0))
    unrouted = make_run("r2", arm=None)
    ledger.insert_new_runs([gated, unrouted])
    ledger.record_outcomes(
        [OutcomeEvent("e2", "r2", success=False), OutcomeEvent("e1", "r1", quality=0.9, cost=0.5)], reward_of
    )
    late = OutcomeEvent("e3", "r1", success=True, human_override=True)
    ledger.record_outcomes([late], reward_of)
    joined = ledger.joined_outcomes_after(0)
    assert [j.outcome.event_id for j in joined] == ["e2", "e1", "e3"]
    e2, e1, e3 = joined
    assert e2.features is None and e2.arm is None
    assert e1.features == {"tier": "gold", "length": 12} and e1.arm == "small" and e1.propensity == 0.75
    assert e1.confidence == 0.8 and e1.agent_cost == 0.02 and e1.agent_latency_s == 1.5
    assert e1.gate_step == "confidence" and e1.gate_passed is True
    assert e1.outcome.cost == 0.5  # the event's own cost wins over the agent's
    assert e3.arm == "small" and e3.outcome.human_override  # a late outcome joins the same decision
    assert [j.outcome.event_id for j in ledger.joined_outcomes_after(e1.outcome.position)] == ["e3"]
    assert ledger.last_position() == e3.outcome.position


def test_learning_events_are_kept_per_workflow(ledger: Ledger) -> None:
    ledger.record_learning_events([
        LearningEvent("support", "drift", "small", 7, {"mean_before": 0.8, "mean_after": 0.4}),
        LearningEvent("other", "drift", None, 9, {}),
    ])
    events = ledger.learning_events("support")
    assert len(events) == 1 and events[0].arm == "small" and events[0].detail["mean_after"] == 0.4
    assert events[0].at > 0 and ledger.learning_events("support", after_id=events[0].id) == []
