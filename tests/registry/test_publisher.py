"""One publisher per version: concurrent publishers, crashes between registry and ledger, a fresh
MLflow store opened by many processes at once (real MLflow store, ledger on SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from flywheel.ledger import Ledger
from flywheel.registry import mlflow_registry
from flywheel.registry.governor import Governor
from flywheel.registry.mlflow_registry import CHAMPION, MlflowRegistry
from tests.registry.publishers import AUTO, config, open_and_register, publish_all

WORKFLOWS = ("triage", "summary")


def enqueue(ledger: Ledger, count: int) -> list[int]:
    ids = []
    for i in range(count):
        wf = WORKFLOWS[i % len(WORKFLOWS)]
        ids.append(ledger.enqueue_version(workflow=wf, proposed_by="learner", position=i,
                                          config=config(wf, 0.5 + i / 100).model_dump(),
                                          evidence={"outcomes": float(i)}, learner_state=b"s", policy_state=None))
    return ids


def check_exactly_once(ledger: Ledger, registry: MlflowRegistry, ids: list[int]) -> None:
    """One registry version and one audit entry per outbox row, a workflow's versions in outbox order."""
    assert ledger.unpublished_versions() == []
    tagged = Counter()
    for wf in WORKFLOWS:
        versions = registry.versions(wf)
        tagged.update(v.tags["outbox_id"] for v in versions)
        outbox_order = [int(v.tags["outbox_id"]) for v in versions]
        assert outbox_order == sorted(outbox_order)
        assert registry.alias(wf, CHAMPION) == (versions[-1].number if versions else None)
    assert tagged == Counter(str(i) for i in ids)
    entries = ledger.audit_entries()
    assert len(entries) == len(ids) and {e.action for e in entries} == {"auto-promote"}
    assert len({e.subject for e in entries}) == len(ids)
    assert ledger.verify_audit() == []


@pytest.fixture
def store(tmp_path: Path) -> tuple[str, str]:
    return f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art")


def test_concurrent_publisher_threads_register_each_version_once(database_url, store) -> None:  # noqa: F811
    setup = Ledger(database_url)
    setup.upgrade()
    ids = enqueue(setup, 8)
    start_at = time.time() + 1.0
    threads = [threading.Thread(target=publish_all, args=(database_url, *store, start_at)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    check_exactly_once(setup, MlflowRegistry(*store), ids)
    setup.dispose()


def test_concurrent_publisher_processes_register_each_version_once(database_url, store) -> None:  # noqa: F811
    setup = Ledger(database_url)
    setup.upgrade()
    ids = enqueue(setup, 6)
    MlflowRegistry(*store)  # the store exists before the publishers start, as in the app
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        start_at = time.time() + 8.0  # after both processes imported MLflow
        decided = pool.starmap(publish_all, [(database_url, *store, start_at)] * 2, chunksize=1)
    assert sum(decided) == len(ids)
    check_exactly_once(setup, MlflowRegistry(*store), ids)
    setup.dispose()


def test_a_retry_after_a_crash_between_registry_and_ledger_reuses_the_version(database_url, store) -> None:  # noqa: F811
    ledger = Ledger(database_url)
    ledger.upgrade()
    [outbox_id] = enqueue(ledger, 1)
    crashed = Governor(MlflowRegistry(*store), ledger, AUTO, publisher_id="crashed")
    item = ledger.claim_version("crashed", lease_s=60)
    # The crashed publisher registered the version, then died before the ledger knew.
    crashed.registry.register(config(item.workflow, 0.5), learner_state=b"s", policy_state=None, evidence={},
                              position=0, proposed_by="learner", tags={"outbox_id": str(outbox_id)})
    waiting = Governor(MlflowRegistry(*store), ledger, AUTO, lease_s=60)
    assert waiting.publish_outbox() == []  # the crashed publisher's lease still holds
    taking_over = Governor(MlflowRegistry(*store), ledger, AUTO, lease_s=0.0)
    [outcome] = taking_over.publish_outbox()
    assert (outcome.number, outcome.status) == (1, "auto")
    check_exactly_once(ledger, taking_over.registry, [outbox_id])
    assert crashed.propose(item) is None  # the crashed publisher, back late, decides nothing
    check_exactly_once(ledger, taking_over.registry, [outbox_id])
    ledger.dispose()


def test_versions_page_through_the_registry_and_filter_by_tags(store, monkeypatch) -> None:
    monkeypatch.setattr(mlflow_registry, "PAGE_SIZE", 2)
    registry = MlflowRegistry(*store)
    for i in range(5):
        registry.register(config("triage", 0.5), learner_state=None, policy_state=None,
                          evidence={"outcomes": float(i), "reward mean": 0.5, "odd?": 1.0}, position=i,
                          proposed_by="learner", tags={"status": "pending" if i % 2 else "auto"})
    assert [v.number for v in registry.versions("triage")] == [1, 2, 3, 4, 5]
    assert [v.number for v in registry.versions("triage", tags={"status": "pending"})] == [2, 4]
    assert registry.versions("triage", tags={"status": "held"}) == []
    assert registry.metrics("triage", 3) == {"outcomes": 2.0, "reward mean": 0.5, "odd_": 1.0}
    with pytest.raises(ValueError, match="quotes"):
        registry.versions("triage", tags={"proposed_by": "o'brien"})


def test_many_processes_open_a_fresh_store_at_once(tmp_path: Path) -> None:
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.apply(time.sleep, (0,))  # the workers are up
        for round_ in range(10):
            uri = f"sqlite:///{tmp_path}/round{round_}/mlflow.db"
            start_at = time.time() + (6.0 if round_ == 0 else 0.5)  # round 0: while MLflow is imported
            args = [(uri, str(tmp_path / f"round{round_}" / "art"), f"wf{i}", start_at) for i in range(4)]
            assert pool.starmap(open_and_register, args, chunksize=1) == [1, 1, 1, 1]
