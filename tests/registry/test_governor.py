"""Governed change over a real MLflow registry and a real ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from flywheel.registry.governor import Governor, NotFound, Refused
from flywheel.registry.learned_config import LearnedConfig, RoutingConfig
from flywheel.registry.mlflow_registry import CANDIDATE, CHAMPION, MlflowRegistry
from flywheel.registry.policy import PolicyBook
from flywheel.learners.config_book import ConfigBook
from flywheel.ledger import Ledger

WF = "ticket_triage"
ARMS = {"fast": 0.2, "strong": 0.5}

POLICY = PolicyBook.model_validate({
    "default": {
        "out_of_bounds": "clip",
        "over_step": "review",
        "parameters": {
            "thresholds.*": {"min": 0.3, "max": 0.95, "max_step": 0.1},
            "routing.temperature": {"autonomy": "review"},
            "cost_weight": {"autonomy": "frozen"},
        },
    }
})


def cfg(threshold=0.7, temperature=1.0, cost_weight=1.0, weights=None) -> LearnedConfig:
    return LearnedConfig(
        workflow=WF,
        thresholds={"confidence": threshold},
        routing=RoutingConfig(weights=weights or ARMS, temperature=temperature),
        cost_weight=cost_weight,
    )


@pytest.fixture
def gov(database_url, tmp_path):  # noqa: F811
    ledger = Ledger(database_url)
    ledger.upgrade()
    registry = MlflowRegistry(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art"))
    yield Governor(registry, ledger, POLICY)
    ledger.dispose()


def propose(gov: Governor, config: LearnedConfig, by: str = "learner"):
    gov.ledger.enqueue_version(workflow=WF, proposed_by=by, position=1, config=config.model_dump(),
                               evidence={"outcomes": 10.0}, learner_state=None, policy_state=None)
    [outcome] = gov.publish_outbox()
    return outcome


def status(gov, n):
    return gov.registry.version_tags(WF, n)["status"]


def actions(gov):
    return [(e.action, e.subject, e.before, e.after) for e in gov.ledger.audit_entries()]


def test_within_policy_goes_live_by_itself_and_is_audited(gov):
    first = propose(gov, cfg())
    second = propose(gov, cfg(threshold=0.75))
    assert (first.status, second.status) == ("auto", "auto")
    assert gov.registry.alias(WF, CHAMPION) == second.number == 2
    assert actions(gov) == [
        ("auto-promote", f"{WF}@v1", None, f"{WF}@v1"),
        ("auto-promote", f"{WF}@v2", f"{WF}@v1", f"{WF}@v2"),
    ]
    assert gov.ledger.unpublished_versions() == []
    assert gov.ledger.verify_audit() == []


def test_out_of_bounds_is_clipped_with_the_reason_recorded(gov):
    propose(gov, cfg(threshold=0.9))
    out = propose(gov, cfg(threshold=0.99))
    assert out.status == "auto"
    assert gov.registry.config(WF, out.number).thresholds == {"confidence": 0.95}
    notes = gov.registry.version_tags(WF, out.number)["policy_notes"]
    assert "thresholds.confidence" in notes and "clipped" in notes and "0.95" in notes


def test_frozen_parameter_is_refused_and_nothing_changes(gov):
    propose(gov, cfg())
    out = propose(gov, cfg(cost_weight=2.0))
    assert out.status == "refused" and not out.champion_changed
    assert gov.registry.alias(WF, CHAMPION) == 1
    tags = gov.registry.version_tags(WF, out.number)
    assert tags["status"] == "refused" and "cost_weight" in tags["reason"] and "frozen" in tags["reason"]
    assert actions(gov)[-1][0] == "refuse"
    with pytest.raises(Refused, match="refused"):
        gov.pin(WF, out.number, actor="op", reason="try")


def test_review_then_approve_and_reject_name_the_reviewer(gov):
    propose(gov, cfg())
    big_step = propose(gov, cfg(threshold=0.9))  # a step of 0.2 > 0.1: review
    assert big_step.status == "pending" and gov.registry.alias(WF, CANDIDATE) == big_step.number
    assert gov.registry.alias(WF, CHAMPION) == 1
    done = gov.approve(WF, None, reviewer="ana", reason="looked at the evidence")
    assert done.champion_after == big_step.number and gov.registry.alias(WF, CHAMPION) == big_step.number
    tags = gov.registry.version_tags(WF, big_step.number)
    assert (tags["status"], tags["reviewed_by"], tags["reason"]) == ("approved", "ana", "looked at the evidence")
    assert gov.registry.alias(WF, CANDIDATE) is None
    with pytest.raises(Refused, match="not pending"):
        gov.approve(WF, big_step.number, reviewer="ana", reason="again")

    temp = propose(gov, cfg(threshold=0.9, temperature=2.0))
    assert temp.status == "pending"
    gov.reject(WF, temp.number, reviewer="bo", reason="too much exploration")
    tags = gov.registry.version_tags(WF, temp.number)
    assert (tags["status"], tags["reviewed_by"], tags["reason"]) == ("rejected", "bo", "too much exploration")
    assert gov.registry.alias(WF, CHAMPION) == big_step.number
    assert [a[0] for a in actions(gov)] == ["auto-promote", "propose", "approve", "propose", "reject"]
    with pytest.raises(NotFound):
        gov.approve(WF, None, reviewer="ana", reason="nothing waits")


def test_a_pin_blocks_auto_promotion_until_unpinned(gov):
    propose(gov, cfg())
    propose(gov, cfg(threshold=0.72))
    gov.pin(WF, 1, actor="olga", reason="incident 42")
    assert gov.registry.alias(WF, CHAMPION) == 1
    held = propose(gov, cfg(threshold=0.74))
    assert held.status == "held" and not held.champion_changed
    assert gov.registry.alias(WF, CHAMPION) == 1
    with pytest.raises(Refused, match="pinned"):
        gov.rollback(WF, actor="olga", reason="no")
    out = gov.unpin(WF, actor="olga", reason="incident over")
    assert out.champion_after == held.number == gov.registry.alias(WF, CHAMPION)
    assert [a[0] for a in actions(gov)][-4:] == ["pin", "hold", "unpin", "auto-promote"]
    with pytest.raises(Refused, match="not pinned"):
        gov.unpin(WF, actor="olga", reason="twice")


def test_rollback_restores_the_earlier_config_and_its_decisions(gov):
    propose(gov, cfg(weights={"fast": 2.0, "strong": 0.1}))
    propose(gov, cfg(weights={"fast": 0.1, "strong": 2.0}))
    probes = [{"prompt": f"ticket {i}"} for i in range(200)]

    def decisions(config):
        book = ConfigBook([config])
        policy = book.live(WF).policy
        return [policy.decide(x, key=f"run-{i}", arms=list(ARMS)).arm for i, x in enumerate(probes)]

    before = decisions(gov.registry.config(WF, 1))
    assert before != decisions(gov.registry.config(WF, 2))
    out = gov.rollback(WF, actor="olga", reason="v2 routes badly")
    assert (out.champion_before, out.champion_after) == (2, 1)
    assert decisions(gov.registry.config(WF, gov.registry.alias(WF, CHAMPION))) == before
    assert actions(gov)[-1] == ("rollback", f"{WF}@v1", f"{WF}@v2", f"{WF}@v1")
    with pytest.raises(Refused, match="already the champion"):
        gov.rollback(WF, to=1, actor="olga", reason="again")


def test_rollback_can_pin_and_history_lists_every_change(gov):
    from flywheel.registry import views

    propose(gov, cfg())
    propose(gov, cfg(threshold=0.75))
    gov.rollback(WF, to=1, actor="olga", reason="hold the old one", pin=True)
    held = propose(gov, cfg(threshold=0.78))
    assert held.status == "held"
    h = views.history(gov.registry, gov.ledger, WF)
    assert h.pinned["pinned_version"] == "1" and h.pinned["pinned_by"] == "olga"
    assert [(v.number, v.status, v.champion) for v in h.versions] == [(1, "auto", True), (2, "auto", False),
                                                                      (3, "held", False)]
    assert [e.action for e in h.events] == ["auto-promote", "auto-promote", "rollback", "pin", "hold"]
    assert all(e.actor in {"learner", "olga"} and e.at > 0 for e in h.events)


def test_registry_down_fails_cleanly_and_versions_wait_in_order(database_url, tmp_path):  # noqa: F811
    ledger = Ledger(database_url)
    ledger.upgrade()
    down = Governor(MlflowRegistry("http://127.0.0.1:9"), ledger, POLICY)  # nothing listens on port 9
    for t in (0.7, 0.72):
        ledger.enqueue_version(workflow=WF, proposed_by="learner", position=1, config=cfg(t).model_dump(),
                               evidence={}, learner_state=b"state", policy_state=None)
    from flywheel.registry.mlflow_registry import RegistryUnavailable

    with pytest.raises(RegistryUnavailable, match="waits in the ledger"):
        down.publish_outbox()
    waiting = ledger.unpublished_versions()
    assert [w.config["thresholds"]["confidence"] for w in waiting] == [0.7, 0.72]
    assert waiting[0].attempts == 1 and waiting[0].last_error
    with pytest.raises(RegistryUnavailable):
        down.pin(WF, 1, actor="olga", reason="x")
    assert ledger.audit_entries() == []  # nothing half-applied, nothing audited

    back = Governor(MlflowRegistry(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art")), ledger, POLICY)
    done = back.publish_outbox()
    assert [(o.number, o.status) for o in done] == [(1, "auto"), (2, "auto")]
    assert back.registry.config(WF, 2).thresholds == {"confidence": 0.72}
    assert ledger.unpublished_versions() == []
    ledger.dispose()


def test_a_proposal_that_plans_no_resources_keeps_the_champions(gov):
    planned = cfg().model_copy(update={"resources": {"fast.min_replicas": 2.0, "fast.max_replicas": 4.0}})
    assert propose(gov, planned, by="tune-resources").action == "auto-promote"  # no resources rule: auto
    learned = propose(gov, cfg(threshold=0.75))  # the learner's next version: no resources of its own
    assert learned.action == "auto-promote"
    assert gov.registry.config(WF, learned.number).resources == planned.resources
