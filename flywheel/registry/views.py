"""Read-only views of the governed registry: proposals, one proposal with its diff, history."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flywheel.registry.governor import NotFound
from flywheel.registry.mlflow_registry import CANDIDATE, CHAMPION, MlflowRegistry, VersionSummary, version_label
from flywheel.registry.judge import diff
from flywheel.ledger import Ledger
from flywheel.ledger.records import AuditEntry


@dataclass(slots=True)
class VersionView:
    """One version as review and history show it."""

    workflow: str
    number: int
    label: str
    status: str
    proposed_by: str
    created_at: float
    parent: int | None
    reviewed_by: str | None
    reason: str | None
    policy_notes: str | None
    champion: bool
    candidate: bool
    pinned: bool


@dataclass(slots=True)
class ProposalView:
    """A proposal with what review needs: its diff against the champion and its evidence."""

    version: VersionView
    champion: int | None
    config: dict[str, Any]
    diff: list[tuple[str, float | None, float | None]]
    evidence: dict[str, float]
    estimated_gain: float | None
    estimated_gain_se: float | None
    drift_events: float | None


@dataclass(slots=True)
class HistoryView:
    workflow: str
    pinned: dict[str, str] | None
    versions: list[VersionView]
    events: list[AuditEntry] = field(default_factory=list)


def _view(workflow: str, v: VersionSummary, champion: int | None, candidate: int | None,
          pinned: int | None) -> VersionView:
    t = v.tags
    parent = t.get("parent_version") or None
    return VersionView(
        workflow=workflow,
        number=v.number,
        label=version_label(workflow, v.number),
        status=t.get("status", "auto"),
        proposed_by=t.get("proposed_by", ""),
        created_at=v.created_at,
        parent=int(parent) if parent else None,
        reviewed_by=t.get("reviewed_by"),
        reason=t.get("reason"),
        policy_notes=t.get("policy_notes"),
        champion=v.number == champion,
        candidate=v.number == candidate,
        pinned=v.number == pinned,
    )


def versions(registry: MlflowRegistry, workflow: str) -> list[VersionView]:
    """Every version of a workflow, oldest first, with its status and role."""
    pin = registry.model_tags(workflow).get("pinned_version")
    champion, candidate = registry.alias(workflow, CHAMPION), registry.alias(workflow, CANDIDATE)
    return [_view(workflow, v, champion, candidate, int(pin) if pin else None)
            for v in registry.versions(workflow)]


def proposals(registry: MlflowRegistry, workflows: list[str]) -> list[VersionView]:
    """Versions waiting for review (status pending), over the given workflows."""
    return [v for wf in workflows for v in versions(registry, wf) if v.status == "pending"]


def proposal(registry: MlflowRegistry, workflow: str, number: int | None) -> ProposalView:
    """One version (default: the candidate) with its diff against the champion and its evidence."""
    if number is None:
        number = registry.alias(workflow, CANDIDATE)
        if number is None:
            raise NotFound(f"{workflow}: no candidate waits for review")
    found = [v for v in versions(registry, workflow) if v.number == number]
    if not found:
        raise NotFound(f"{workflow}: no version {number}", about="number")
    champion = registry.alias(workflow, CHAMPION)
    config = registry.config(workflow, number)
    base = registry.config(workflow, champion) if champion is not None else None
    evidence = registry.metrics(workflow, number)
    return ProposalView(
        version=found[0],
        champion=champion,
        config=config.model_dump(),
        diff=diff(base, config),
        evidence=evidence,
        estimated_gain=evidence.get("estimated_gain"),
        estimated_gain_se=evidence.get("estimated_gain_se"),
        drift_events=evidence.get("drift_events_total"),
    )


def history(registry: MlflowRegistry, ledger: Ledger, workflow: str) -> HistoryView:
    """Every version of a workflow and every audited change to it: who, when, why."""
    tags = registry.model_tags(workflow)
    pinned = {k: v for k, v in tags.items() if k.startswith("pinned_")} or None
    events = [e for e in ledger.audit_entries()
              if e.subject == workflow or e.subject.startswith(f"{workflow}@")]
    return HistoryView(workflow=workflow, pinned=pinned, versions=versions(registry, workflow), events=events)
