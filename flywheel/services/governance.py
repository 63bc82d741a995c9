"""Governance operations as plain, JSON-able calls, and how routers follow the champion.

`GovernanceOps.dispatch(op, args)` is what the HTTP API and the router
deployment call: it runs one Governor or view operation and returns a dict, or
`{"error": {"status": ..., "message": ...}}` (so the error crosses a Ray handle
unchanged). `ChampionSync` reads the registry's champion of a workflow when it
differs from the live one; routers apply what it returns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from flywheel.registry.governor import GovernanceError, Governor
from flywheel.registry.learned_config import LearnedConfig
from flywheel.registry.mlflow_registry import MlflowRegistry, RegistryUnavailable, version_label
from flywheel.registry import views
from flywheel.learners.config_book import ConfigBook

if TYPE_CHECKING:
    from flywheel.services.settings import AppSettings
    from flywheel.ledger import Ledger

log = logging.getLogger(__name__)

CHANGES_LIVE = {"approve", "pin", "unpin", "rollback"}
"""Operations after which routers must look at the champion again."""


class GovernanceOps:
    """The operations of review and operators, over one registry and ledger."""

    def __init__(self, governor: Governor, workflows: list[str]):
        self.governor = governor
        self.workflows = workflows

    @classmethod
    def from_settings(cls, settings: "AppSettings", ledger: "Ledger", workflows: list[str]) -> "GovernanceOps":
        from flywheel.registry.policy import load_policies

        learning = settings.learning
        registry = MlflowRegistry(learning.mlflow_tracking_uri, learning.mlflow_artifacts)
        return cls(Governor(registry, ledger, load_policies(settings.governance.policies)), workflows)

    def dispatch(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run `op` with `args`; a dict result, or {"error": {status, message}}."""
        try:
            wf = args.get("workflow")
            if wf is not None and wf not in self.workflows:
                return _error(404, f"workflow: unknown workflow {wf!r}")
            return getattr(self, f"_op_{op}")(**args)
        except GovernanceError as e:
            return _error(e.status, str(e))
        except RegistryUnavailable as e:
            return _error(503, str(e))

    # -- operations -------------------------------------------------------------

    def _op_proposals(self, workflow: str | None = None) -> dict[str, Any]:
        wfs = [workflow] if workflow else self.workflows
        return {"proposals": [asdict(v) for v in views.proposals(self.governor.registry, wfs)]}

    def _op_show(self, workflow: str, number: int | None = None) -> dict[str, Any]:
        view = views.proposal(self.governor.registry, workflow, number)
        out = asdict(view)
        out["diff"] = [{"parameter": p, "champion": a, "proposal": b} for p, a, b in view.diff]
        return out

    def _op_approve(self, workflow: str, actor: str, reason: str, number: int | None = None) -> dict[str, Any]:
        return _outcome(self.governor.approve(workflow, number, reviewer=actor, reason=reason))

    def _op_reject(self, workflow: str, actor: str, reason: str, number: int | None = None) -> dict[str, Any]:
        return _outcome(self.governor.reject(workflow, number, reviewer=actor, reason=reason))

    def _op_pin(self, workflow: str, number: int, actor: str, reason: str) -> dict[str, Any]:
        return _outcome(self.governor.pin(workflow, number, actor=actor, reason=reason))

    def _op_unpin(self, workflow: str, actor: str, reason: str) -> dict[str, Any]:
        return _outcome(self.governor.unpin(workflow, actor=actor, reason=reason))

    def _op_rollback(
        self, workflow: str, actor: str, reason: str, to: int | None = None, pin: bool = False
    ) -> dict[str, Any]:
        return _outcome(self.governor.rollback(workflow, to, actor=actor, reason=reason, pin=pin))

    def _op_history(self, workflow: str) -> dict[str, Any]:
        return asdict(views.history(self.governor.registry, self.governor.ledger, workflow))

    def _op_audit_verify(self) -> dict[str, Any]:
        entries = self.governor.ledger.audit_entries()
        problems = self.governor.ledger.verify_audit()
        return {"entries": len(entries), "intact": not problems, "problems": problems}


def _outcome(o) -> dict[str, Any]:
    out = asdict(o)
    out["champion_changed"] = o.champion_changed
    out["live_version"] = None if o.champion_after is None else version_label(o.workflow, o.champion_after)
    return out


def _error(status: int, message: str) -> dict[str, Any]:
    return {"error": {"status": status, "message": message}}


class ChampionSync:
    """Fetches a workflow's champion from the registry when it is not the live version."""

    def __init__(self, registry: MlflowRegistry):
        self.registry = registry
        self._warned_at = 0.0

    def fetch(self, workflow: str, live_version: str | None) -> tuple[LearnedConfig, bytes | None] | None:
        """(config, policy state) of the champion if it differs from `live_version` and can decide;
        None when it is the same, there is none, or MLflow cannot be reached (serving goes on)."""
        try:
            number = self.registry.champion_number(workflow)
            if number is None or version_label(workflow, number) == live_version:
                return None
            found = self.registry.version(workflow, number, learner=False)
        except Exception as e:  # MLflow down: keep the last known champion
            if time.monotonic() - self._warned_at > 30:
                self._warned_at = time.monotonic()
                log.warning("registry unreachable; routing stays on the last known champion: %s", e)
            return None
        try:
            ConfigBook([]).apply(found.config, found.policy_state)  # it can decide
        except Exception:
            log.exception("champion %s cannot be used; the live version stays", found.config.version)
            return None
        return found.config, found.policy_state
