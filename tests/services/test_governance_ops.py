"""GovernanceOps' typed methods and errors: each error has its HTTP status and the request field
it concerns, keeps both across a Ray handle, and never shows the MLflow tracking URI."""

from __future__ import annotations

import asyncio
import copy
import logging

import pytest
from ray.exceptions import RayTaskError

from flywheel.ledger import Ledger
from flywheel.registry.governor import GovernanceError, Governor, NotFound, Refused
from flywheel.registry.mlflow_registry import MlflowRegistry
from flywheel.services.deployments.governance_client import unwrapped
from flywheel.services.governance import GovernanceOps, LocalGovernance
from flywheel.services.governance_api import AuditReport, ChangeResult, RegistryDown
from tests.registry.test_governor import POLICY, WF, cfg, propose


@pytest.fixture
def ops(database_url, tmp_path):
    ledger = Ledger(database_url)
    ledger.upgrade()
    registry = MlflowRegistry(f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art"))
    yield GovernanceOps(Governor(registry, ledger, POLICY), [WF])
    ledger.dispose()


def _raised(call) -> GovernanceError:
    with pytest.raises(GovernanceError) as info:
        call()
    return info.value


def test_results_are_typed_and_changes_name_the_live_version(ops):
    propose(ops.governor, cfg())
    pending = propose(ops.governor, cfg(threshold=0.9))  # a step over max_step: review
    listed = ops.proposals(WF)
    assert [v.number for v in listed.proposals] == [pending.number]
    shown = ops.show(WF, pending.number)
    assert shown.version.status == "pending" and shown.champion == 1
    assert [(d.parameter, d.champion, d.proposal) for d in shown.diff] == [("thresholds.confidence", 0.7, 0.9)]
    done = ops.approve(WF, pending.number, actor="ana", reason="evidence is good")
    assert isinstance(done, ChangeResult)
    assert (done.champion_before, done.champion_after, done.champion_changed) == (1, 2, True)
    assert done.live_version == f"{WF}@v2" and done.status == "approved"
    report = ops.audit_verify()
    assert isinstance(report, AuditReport) and report.intact and report.entries == 3
    assert [e.action for e in ops.history(WF).events] == ["auto-promote", "propose", "approve"]


def test_errors_carry_status_and_the_request_field(ops):
    propose(ops.governor, cfg())
    refused = propose(ops.governor, cfg(cost_weight=2.0))  # frozen: refused
    cases = [
        (lambda: ops.show(WF, 99), NotFound, 404, ("path", "version")),
        (lambda: ops.approve(WF, 99, actor="a", reason="r"), NotFound, 404, ("path", "version")),
        (lambda: ops.approve(WF, None, actor="a", reason="r"), NotFound, 404, ("path", "workflow")),
        (lambda: ops.reject(WF, 1, actor="a", reason="r"), Refused, 409, ("path", "version")),
        (lambda: ops.history("nope"), NotFound, 404, ("path", "workflow")),
        (lambda: ops.proposals("nope"), NotFound, 404, ("query", "workflow")),
        (lambda: ops.pin(WF, refused.number, actor="o", reason="r"), Refused, 409, ("body", "version")),
        (lambda: ops.pin(WF, 99, actor="o", reason="r"), NotFound, 404, ("body", "version")),
        (lambda: ops.rollback(WF, 1, actor="o", reason="r"), Refused, 409, ("body", "to")),
        (lambda: ops.rollback(WF, 99, actor="o", reason="r"), NotFound, 404, ("body", "to")),
        (lambda: ops.rollback(WF, None, actor="o", reason="r"), NotFound, 404, ("path", "workflow")),
        (lambda: ops.unpin(WF, actor="o", reason="r"), Refused, 409, ("path", "workflow")),
    ]
    for call, kind, status, loc in cases:
        e = _raised(call)
        assert (type(e), e.status, e.loc) == (kind, status, loc), str(e)
    ops.pin(WF, 1, actor="o", reason="incident")
    e = _raised(lambda: ops.rollback(WF, 1, actor="o", reason="r"))
    assert (e.status, e.loc) == (409, ("path", "workflow")) and "pinned" in str(e)


def test_registry_down_is_a_503_without_the_tracking_uri(database_url, caplog):
    ledger = Ledger(database_url)
    ledger.upgrade()
    secret_uri = "http://flywheel:s3cret@127.0.0.1:9"  # nothing listens on port 9
    ops = GovernanceOps(Governor(MlflowRegistry(secret_uri), ledger, POLICY), [WF])
    try:
        with caplog.at_level(logging.WARNING, logger="flywheel.services.governance"):
            e = _raised(lambda: ops.pin(WF, 1, actor="o", reason="r"))
    finally:
        ledger.dispose()
    assert isinstance(e, RegistryDown) and e.status == 503 and e.loc == ("service",)
    assert str(e) == "the registry (MLflow) is unreachable"
    assert e.__cause__ is None and e.__suppress_context__
    assert "s3cret" in caplog.text  # the operator's log has it; the client never does


def test_typed_errors_survive_the_ray_handle():
    """Serve raises a replica's exception as RayTaskError (a dual instance of the cause's class);
    the client raises the original, with its type, status and loc."""
    sent = NotFound("ticket_triage: no version 99", about="number").at(("path", "version"))
    # Ray rebuilds the cause from its __reduce__ on the caller's side: so does deepcopy.
    rebuilt = copy.deepcopy(sent)
    assert (type(rebuilt), rebuilt.loc, rebuilt.about, str(rebuilt)) == (
        NotFound, ("path", "version"), "number", "ticket_triage: no version 99")
    down = copy.deepcopy(RegistryDown())
    assert (down.status, down.loc, str(down)) == (503, ("service",), "the registry (MLflow) is unreachable")

    wrapped = RayTaskError("show", "Traceback (most recent call last): ...", rebuilt,
                           proctitle="router", pid=1, ip="127.0.0.1").as_instanceof_cause()
    assert isinstance(wrapped, RayTaskError) and isinstance(wrapped, NotFound)

    async def replica_raises():
        raise wrapped

    with pytest.raises(NotFound) as info:
        asyncio.run(unwrapped(replica_raises()))
    assert type(info.value) is NotFound and info.value.loc == ("path", "version") and info.value.status == 404

    async def replica_crashes():
        raise RayTaskError("show", "Traceback ...", ValueError("bug"), proctitle="router", pid=1, ip="127.0.0.1")

    with pytest.raises(RayTaskError):  # anything else stays Ray's error (a 500)
        asyncio.run(unwrapped(replica_crashes()))


def test_local_client_follows_only_changes_of_what_is_live(ops):
    propose(ops.governor, cfg())
    propose(ops.governor, cfg(threshold=0.75))
    followed: list[str] = []

    async def follow(workflow: str) -> None:
        followed.append(workflow)

    client = LocalGovernance(ops, follow)

    async def scenario() -> None:
        await client.history(WF)
        rolled = await client.rollback(WF, None, actor="olga", reason="v2 routes badly")
        assert rolled.live_version == f"{WF}@v1"
        with pytest.raises(NotFound) as info:
            await client.show(WF, 7)
        assert info.value.loc == ("path", "version")

    asyncio.run(scenario())
    assert followed == [WF]
