"""What governance operations take, return and raise: the typed contract between the HTTP
layer, the ingress's client and the router deployment (or the in-process operations).

Results are plain dataclasses; errors are the registry's `GovernanceError` subclasses, each
with its HTTP `status` and the request field it concerns (`loc`), so the HTTP layer answers
from typed fields and never from message text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from flywheel.registry.governor import GovernanceError, Outcome
from flywheel.registry.mlflow_registry import version_label
from flywheel.registry.views import HistoryView, ProposalView, VersionView

UNREACHABLE = "the registry (MLflow) is unreachable"


class RegistryDown(GovernanceError):
    """MLflow cannot be reached: nothing was changed. The message never names the tracking URI
    (it may hold credentials); that goes only to the log."""

    status = 503

    def __init__(self, message: str = UNREACHABLE, *, about: str = "workflow", loc: tuple[str, ...] = ("service",)):
        super().__init__(message, about=about, loc=loc)


class GovernanceDisabled(GovernanceError):
    """This deployment has no registry (learning.enabled is false)."""

    status = 503

    def __init__(self, message: str = "governance needs the registry (learning.enabled)", *,
                 about: str = "workflow", loc: tuple[str, ...] = ("service",)):
        super().__init__(message, about=about, loc=loc)


@dataclass(slots=True)
class ChangeResult:
    """What a change of review or operators did to a workflow's live version."""

    workflow: str
    action: str
    number: int | None
    champion_before: int | None
    champion_after: int | None
    champion_changed: bool
    live_version: str | None
    status: str
    reasons: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, o: Outcome) -> "ChangeResult":
        live = None if o.champion_after is None else version_label(o.workflow, o.champion_after)
        return cls(o.workflow, o.action, o.number, o.champion_before, o.champion_after, o.champion_changed,
                   live, o.status, list(o.reasons))


@dataclass(slots=True)
class ProposalList:
    """Versions waiting for review."""

    proposals: list[VersionView]


@dataclass(slots=True)
class DiffRow:
    """One parameter that differs between the champion and a proposal."""

    parameter: str
    champion: float | None
    proposal: float | None


@dataclass(slots=True)
class ProposalDetail:
    """A version with its diff against the champion and its evidence."""

    version: VersionView
    champion: int | None
    config: dict[str, Any]
    diff: list[DiffRow]
    evidence: dict[str, float]
    estimated_gain: float | None
    estimated_gain_se: float | None
    drift_events: float | None

    @classmethod
    def of(cls, v: ProposalView) -> "ProposalDetail":
        return cls(v.version, v.champion, v.config, [DiffRow(p, a, b) for p, a, b in v.diff], v.evidence,
                   v.estimated_gain, v.estimated_gain_se, v.drift_events)


@dataclass(slots=True)
class AuditReport:
    """The audit trail's hash chain, checked."""

    entries: int
    intact: bool
    problems: list[str]


class GovernanceClient(Protocol):
    """The operations of review and operators, as the HTTP layer calls them. Each raises a
    `GovernanceError` (with `status` and `loc`) when it cannot be done as asked."""

    async def proposals(self, workflow: str | None = None) -> ProposalList: ...

    async def show(self, workflow: str, version: int | None = None) -> ProposalDetail: ...

    async def approve(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult: ...

    async def reject(self, workflow: str, version: int | None, *, actor: str, reason: str) -> ChangeResult: ...

    async def pin(self, workflow: str, version: int, *, actor: str, reason: str) -> ChangeResult: ...

    async def unpin(self, workflow: str, *, actor: str, reason: str) -> ChangeResult: ...

    async def rollback(self, workflow: str, to: int | None, *, actor: str, reason: str,
                       pin: bool = False) -> ChangeResult: ...

    async def history(self, workflow: str) -> HistoryView: ...

    async def audit_verify(self) -> AuditReport: ...
