"""The version outbox's claims: one publisher per version, a workflow's versions in order, leases that expire."""

from __future__ import annotations

import threading
from collections.abc import Callable

from flywheel.ledger import Ledger


def enqueue(ledger: Ledger, workflow: str, position: int = 1) -> int:
    return ledger.enqueue_version(workflow=workflow, proposed_by="learner", position=position,
                                  config={"workflow": workflow}, evidence={}, learner_state=b"s",
                                  policy_state=None)


def test_only_the_oldest_waiting_version_of_a_workflow_is_claimable(ledger: Ledger) -> None:
    a1, a2, b1 = enqueue(ledger, "a"), enqueue(ledger, "a"), enqueue(ledger, "b")
    first = ledger.claim_version("p1", lease_s=60)
    second = ledger.claim_version("p2", lease_s=60)
    assert (first.id, second.id) == (a1, b1)  # a2 waits behind a1, which p1 holds
    assert ledger.claim_version("p2", lease_s=60) is None
    with ledger.governed_publication(a1) as publication:
        publication.append(actor="learner", action="auto-promote", subject="a@v1", before=None, after="a@v1",
                           reason="ok")
        publication.published(1)
    assert ledger.claim_version("p2", lease_s=60).id == a2


def test_a_published_version_is_not_decided_again(ledger: Ledger) -> None:
    a1 = enqueue(ledger, "a")
    with ledger.governed_publication(a1) as publication:
        publication.published(7)
    with ledger.governed_publication(a1) as publication:
        assert publication is None
    assert ledger.claim_version("p1", lease_s=60) is None
    assert ledger.unpublished_versions() == []


def test_a_failed_or_expired_claim_frees_the_version(ledger: Ledger) -> None:
    a1 = enqueue(ledger, "a")
    assert ledger.claim_version("p1", lease_s=60).id == a1
    ledger.mark_version_failed(a1, "late", claimant="p2")  # not p2's claim: the row stays p1's, untouched
    assert ledger.claim_version("p2", lease_s=60) is None
    ledger.mark_version_failed(a1, "mlflow down", claimant="p1")
    retried = ledger.claim_version("p2", lease_s=60)
    assert (retried.id, retried.attempts, retried.last_error) == (a1, 1, "mlflow down")
    assert ledger.claim_version("p3", lease_s=60) is None
    assert ledger.claim_version("p3", lease_s=0.0).id == a1  # p2 died: its lease has run out


def test_concurrent_claimants_never_share_a_version(make_ledger: Callable[[], Ledger]) -> None:
    setup = make_ledger()
    setup.upgrade()
    ids = [enqueue(setup, f"wf{i}") for i in range(24)]
    ledgers = [make_ledger() for _ in range(4)]
    start = threading.Barrier(len(ledgers))
    claimed: dict[str, list[int]] = {}

    def claim_all(name: str, ledger: Ledger) -> None:
        mine = claimed.setdefault(name, [])
        start.wait()
        while (item := ledger.claim_version(name, lease_s=600)) is not None:
            mine.append(item.id)
            with ledger.governed_publication(item.id) as publication:
                assert publication is not None
                publication.published(len(mine))

    threads = [threading.Thread(target=claim_all, args=(f"p{i}", lg)) for i, lg in enumerate(ledgers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    every = [i for mine in claimed.values() for i in mine]
    assert sorted(every) == ids  # each version claimed exactly once
