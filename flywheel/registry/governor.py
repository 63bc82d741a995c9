"""Governed change: every move of what is live goes through here, and into the audit trail.

State lives in MLflow, so its UI shows what the CLI shows: the alias `champion`
is the live version, `candidate` the newest one waiting for review; version tags
hold the status (`auto`, `pending`, `approved`, `rejected`, `refused`, `held`,
`superseded`), the reviewer, the reason and the policy's notes; the registered
model's tags hold a pin. Each operation runs inside the ledger's governed
transaction, which serializes it against every other change (other processes
too) and appends its audit entries; if MLflow fails half-way, what was already
changed there is undone and no entry is written.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from flywheel.registry.changes import GovernanceError, NotFound, Outcome, Refused
from flywheel.registry.learned_config import LearnedConfig
from flywheel.registry.mlflow_registry import (
    CANDIDATE,
    CHAMPION,
    MlflowRegistry,
    RegistryUnavailable,
    version_label,
)
from flywheel.registry.judge import evaluate
from flywheel.registry.policy import PolicyBook
from flywheel.ledger import Ledger
from flywheel.ledger.records import OutboxVersion

log = logging.getLogger(__name__)

PIN_TAGS = ("pinned_version", "pinned_by", "pinned_reason", "pinned_at")
LIVE_ACTIONS = ("auto-promote", "approve", "pin", "rollback")
"""Audit actions that move the champion."""
DEFAULT_LEASE_S = 300.0
"""How long a publisher's claim on a waiting version holds: far above the time one
registration takes (a few MLflow calls, each bounded by its HTTP timeout), so a
live publisher never loses its claim, while a dead one's is taken over."""


def _label(workflow: str, number: int | None) -> str | None:
    return None if number is None else version_label(workflow, number)


class Governor:
    """Policy-checked proposals, review, pins and rollbacks over one registry and one ledger."""

    def __init__(
        self,
        registry: MlflowRegistry,
        ledger: Ledger,
        policies: PolicyBook,
        clock: Callable[[], float] = time.time,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        publisher_id: str | None = None,
    ):
        self.registry = registry
        self.ledger = ledger
        self.policies = policies
        self.clock = clock
        self.lease_s = lease_s
        self.publisher_id = publisher_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    # -- proposals from learners (through the ledger's outbox) ----------------

    def publish_outbox(self, limit: int = 100) -> list[Outcome]:
        """Register the versions waiting in the ledger, each through the policy; returns what was done.

        Each version is first claimed in the ledger (a lease of `lease_s`; only
        the oldest waiting version of a workflow can be claimed, so a workflow's
        versions go in order), so concurrent publishers never take the same one.
        Stops at the first failure (MLflow down): that version gives up its claim
        and waits in the ledger, with the ones after it, for the next call.
        """
        done = []
        for _ in range(limit):
            item = self.ledger.claim_version(self.publisher_id, lease_s=self.lease_s)
            if item is None:
                break
            try:
                outcome = self.propose(item)
            except Exception as e:
                self.ledger.mark_version_failed(item.id, repr(e), claimant=self.publisher_id)
                raise RegistryUnavailable(f"version {item.id} of {item.workflow} waits in the ledger: {e}") from e
            if outcome is not None:
                done.append(outcome)
        return done

    def propose(self, item: OutboxVersion) -> Outcome | None:
        """Register one claimed version and decide, by policy, whether it goes live.

        Idempotent by outbox id: a version an earlier attempt registered (tag
        `outbox_id`) is reused, never registered again. Returns None, deciding
        nothing, when another publisher has decided this version meanwhile.
        """
        wf = item.workflow
        proposal = LearnedConfig.model_validate(item.config)
        policy = self.policies.for_workflow(wf)
        champion = self.registry.champion_number(wf)
        proposal = _keeping_resources(proposal, self._config(wf, champion))
        verdict = _kind_checked(evaluate(proposal, self._config(wf, champion), policy), self._config(wf, champion))
        number = self._registered(item)
        if number is None:
            number = self.registry.register(
                verdict.config,
                learner_state=item.learner_state,
                policy_state=item.policy_state,
                evidence=item.evidence,
                position=item.position,
                proposed_by=item.proposed_by,
                tags={
                    "outbox_id": str(item.id),
                    "status": "proposed",
                    "policy_decision": verdict.decision,
                    "policy_notes": _join(verdict.reasons),
                },
            )
        with self.ledger.governed_publication(item.id) as publication:
            if publication is None:
                return None
            now_champion = self.registry.champion_number(wf)
            decision, reasons = verdict.decision, list(verdict.reasons)
            if now_champion != champion:  # an operator moved the champion meanwhile: judge again
                again = _kind_checked(evaluate(proposal, self._config(wf, now_champion), policy),
                                      self._config(wf, now_champion))
                if again.config.content_hash() != verdict.config.content_hash() and again.decision != "refused":
                    decision, reasons = "review", reasons + ["the champion changed while it was judged"]
                else:
                    decision, reasons = again.decision, list(again.reasons)
            outcome = self._decide(item, number, now_champion, decision, reasons, publication.append)
            publication.published(number)
            return outcome

    def _decide(self, item: OutboxVersion, number: int, champion: int | None, decision: str,
                reasons: list[str], append) -> Outcome:
        """Apply the policy's decision on a registered version in the registry and the audit trail."""
        wf = item.workflow
        subject = version_label(wf, number)
        before = _label(wf, champion)
        why = _join(reasons) or "within policy"
        if decision == "refused":
            self.registry.set_version_tags(wf, number, {"status": "refused", "reason": why})
            append(actor=item.proposed_by, action="refuse", subject=subject, before=before, after=before,
                   reason=why)
            return Outcome(wf, "refuse", number, champion, champion, "refused", reasons)
        if decision == "review":
            self._supersede_candidate(wf, item.proposed_by)
            self.registry.set_version_tags(wf, number, {"status": "pending", "reason": why})
            self.registry.set_alias(wf, CANDIDATE, number)
            append(actor=item.proposed_by, action="propose", subject=subject, before=before, after=before,
                   reason=why)
            return Outcome(wf, "propose", number, champion, champion, "pending", reasons)
        pin = self.registry.model_tags(wf).get("pinned_version")
        if pin:
            self.registry.set_version_tags(wf, number, {"status": "held", "reason": f"pinned at v{pin}"})
            append(actor=item.proposed_by, action="hold", subject=subject, before=before, after=before,
                   reason=f"within policy, but {wf} is pinned at v{pin}")
            return Outcome(wf, "hold", number, champion, champion, "held", reasons)
        self.registry.set_version_tags(wf, number, {"status": "auto", "reason": why})
        self.registry.set_alias(wf, CHAMPION, number)
        append(actor=item.proposed_by, action="auto-promote", subject=subject, before=before,
               after=subject, reason=why)
        return Outcome(wf, "auto-promote", number, champion, number, "auto", reasons)

    # -- review ---------------------------------------------------------------

    def approve(self, workflow: str, number: int | None, *, reviewer: str, reason: str) -> Outcome:
        """Make a pending version champion; names the reviewer."""
        with self.ledger.governed() as append:
            self.registry.ping()
            number = self._pending(workflow, number)
            self._not_pinned(workflow, "approve")
            before = self.registry.champion_number(workflow)
            self._apply(
                workflow,
                lambda: self.registry.set_version_tags(
                    workflow, number, _review_tags("approved", reviewer, reason, self.clock())
                ),
                lambda: self.registry.set_alias(workflow, CHAMPION, number),
                lambda: self.registry.delete_alias(workflow, CANDIDATE),
                undo=lambda: self._restore(workflow, before, number, "pending"),
            )
            append(actor=reviewer, action="approve", subject=version_label(workflow, number),
                   before=_label(workflow, before), after=version_label(workflow, number), reason=reason)
        return Outcome(workflow, "approve", number, before, number, "approved")

    def reject(self, workflow: str, number: int | None, *, reviewer: str, reason: str) -> Outcome:
        """Close a pending version without it going live; names the reviewer and the reason."""
        with self.ledger.governed() as append:
            self.registry.ping()
            number = self._pending(workflow, number)
            champion = self.registry.champion_number(workflow)
            self._apply(
                workflow,
                lambda: self.registry.set_version_tags(
                    workflow, number, _review_tags("rejected", reviewer, reason, self.clock())
                ),
                lambda: self.registry.delete_alias(workflow, CANDIDATE),
                undo=lambda: self._restore(workflow, champion, number, "pending"),
            )
            label = _label(workflow, champion)
            append(actor=reviewer, action="reject", subject=version_label(workflow, number), before=label,
                   after=label, reason=reason)
        return Outcome(workflow, "reject", number, champion, champion, "rejected")

    # -- operators ------------------------------------------------------------

    def pin(self, workflow: str, number: int, *, actor: str, reason: str) -> Outcome:
        """Hold `number` live: it becomes champion and nothing else goes live until unpinned."""
        with self.ledger.governed() as append:
            self.registry.ping()
            self._may_go_live(workflow, number, "pin")
            before = self.registry.champion_number(workflow)
            pin = {"pinned_version": str(number), "pinned_by": actor, "pinned_reason": reason,
                   "pinned_at": str(self.clock())}
            self._apply(
                workflow,
                lambda: self.registry.set_model_tags(workflow, pin),
                lambda: self.registry.set_alias(workflow, CHAMPION, number),
                undo=lambda: (self.registry.delete_model_tags(workflow, list(PIN_TAGS)),
                              self._restore(workflow, before, None, "")),
            )
            append(actor=actor, action="pin", subject=version_label(workflow, number),
                   before=_label(workflow, before), after=version_label(workflow, number), reason=reason)
        return Outcome(workflow, "pin", number, before, number, "pinned")

    def unpin(self, workflow: str, *, actor: str, reason: str) -> Outcome:
        """Release a pin; the newest version held meanwhile goes live if policy still lets it."""
        with self.ledger.governed() as append:
            self.registry.ping()
            tags = self.registry.model_tags(workflow)
            if not tags.get("pinned_version"):
                raise Refused(f"{workflow}: not pinned")
            champion = self.registry.champion_number(workflow)
            self._apply(workflow, lambda: self.registry.delete_model_tags(workflow, list(PIN_TAGS)),
                        undo=lambda: self.registry.set_model_tags(
                            workflow, {k: tags[k] for k in PIN_TAGS if k in tags}))
            label = _label(workflow, champion)
            append(actor=actor, action="unpin", subject=workflow, before=label, after=label, reason=reason)
            after = self._release_held(workflow, champion, append)
        return Outcome(workflow, "unpin", after, champion, after, "unpinned")

    def rollback(
        self, workflow: str, to: int | None = None, *, actor: str, reason: str, pin: bool = False
    ) -> Outcome:
        """Make an earlier version champion again (default: the champion before this one)."""
        with self.ledger.governed() as append:
            self.registry.ping()
            self._not_pinned(workflow, "roll back")
            current = self.registry.champion_number(workflow)
            target = to if to is not None else self.previous_champion(workflow, current)
            about = "workflow" if to is None else "to"
            if target is None:
                raise NotFound(f"{workflow}: no earlier champion to roll back to")
            if target == current:
                raise Refused(f"{workflow}: v{target} is already the champion", about=about)
            self._may_go_live(workflow, target, "roll back to", about=about)
            pin_tags = {"pinned_version": str(target), "pinned_by": actor, "pinned_reason": reason,
                        "pinned_at": str(self.clock())}
            steps = [lambda: self.registry.set_alias(workflow, CHAMPION, target)]
            if pin:
                steps.append(lambda: self.registry.set_model_tags(workflow, pin_tags))
            self._apply(workflow, *steps, undo=lambda: (
                self.registry.delete_model_tags(workflow, list(PIN_TAGS)) if pin else None,
                self._restore(workflow, current, None, "")))
            append(actor=actor, action="rollback", subject=version_label(workflow, target),
                   before=_label(workflow, current), after=version_label(workflow, target), reason=reason)
            if pin:
                append(actor=actor, action="pin", subject=version_label(workflow, target),
                       before=version_label(workflow, target), after=version_label(workflow, target),
                       reason=reason)
        return Outcome(workflow, "rollback", target, current, target, "pinned" if pin else "live")

    def previous_champion(self, workflow: str, current: int | None) -> int | None:
        """The champion before `current`, from the audit trail (else `current`'s parent)."""
        label = _label(workflow, current)
        for entry in reversed(self.ledger.audit_entries()):
            if entry.action in LIVE_ACTIONS and entry.after == label and entry.before != label:
                if entry.subject.split("@", 1)[0] == workflow and entry.before:
                    return int(entry.before.rsplit("@v", 1)[1])
        if current is None:
            return None
        parent = (self.registry.version_tags(workflow, current) or {}).get("parent_version")
        return int(parent) if parent else None

    # -- helpers --------------------------------------------------------------

    def _config(self, workflow: str, number: int | None) -> LearnedConfig | None:
        return None if number is None else self.registry.config(workflow, number)

    def _registered(self, item: OutboxVersion) -> int | None:
        """The version an earlier, interrupted attempt registered for this outbox row (the first one)."""
        found = self.registry.versions(item.workflow, tags={"outbox_id": str(item.id)})
        return found[0].number if found else None

    def _pending(self, workflow: str, number: int | None) -> int:
        about = "number"
        if number is None:
            about = "workflow"
            number = self.registry.alias(workflow, CANDIDATE)
            if number is None:
                raise NotFound(f"{workflow}: no candidate waits for review")
        status = self._status(workflow, number, about)
        if status != "pending":
            raise Refused(f"{workflow}: v{number} is {status or 'not a proposal'}, not pending review", about=about)
        return number

    def _status(self, workflow: str, number: int, about: str = "number") -> str:
        tags = self.registry.version_tags(workflow, number)
        if tags is None:
            raise NotFound(f"{workflow}: no version {number}", about=about)
        # Versions published before governance existed went live directly.
        return tags.get("status", "auto")

    def _may_go_live(self, workflow: str, number: int, what: str, about: str = "number") -> None:
        status = self._status(workflow, number, about)
        if status in ("refused", "rejected", "pending", "superseded"):
            raise Refused(f"{workflow}: cannot {what} v{number}: it is {status} and was never approved",
                          about=about)

    def _not_pinned(self, workflow: str, what: str) -> None:
        pin = self.registry.model_tags(workflow).get("pinned_version")
        if pin:
            raise Refused(f"{workflow}: pinned at v{pin}; unpin it before you {what}")

    def _supersede_candidate(self, workflow: str, proposed_by: str) -> None:
        """A proposer's newer proposal replaces its older pending ones (others' stay pending)."""
        for v in self.registry.versions(workflow, tags={"status": "pending"}):
            if v.tags.get("proposed_by") == proposed_by:
                self.registry.set_version_tags(workflow, v.number, {"status": "superseded"})

    def _release_held(self, workflow: str, champion: int | None, append) -> int | None:
        held = [v for v in self.registry.versions(workflow, tags={"status": "held"})
                if champion is None or v.number > champion]
        if not held:
            return champion
        newest = held[-1]
        for v in held[:-1]:
            self.registry.set_version_tags(workflow, v.number, {"status": "superseded"})
        verdict = evaluate(self.registry.config(workflow, newest.number), self._config(workflow, champion),
                           self.policies.for_workflow(workflow))
        subject = version_label(workflow, newest.number)
        if verdict.decision != "auto" or verdict.config.content_hash() != newest.tags.get("config_hash"):
            self.registry.set_version_tags(workflow, newest.number, {"status": "pending"})
            self.registry.set_alias(workflow, CANDIDATE, newest.number)
            append(actor="policy", action="propose", subject=subject, before=_label(workflow, champion),
                   after=_label(workflow, champion), reason="held while pinned; now needs review: "
                   + (_join(verdict.reasons) or "policy changed"))
            return champion
        self.registry.set_version_tags(workflow, newest.number, {"status": "auto"})
        self.registry.set_alias(workflow, CHAMPION, newest.number)
        append(actor="policy", action="auto-promote", subject=subject, before=_label(workflow, champion),
               after=subject, reason="held while pinned; released by unpin")
        return newest.number

    def _restore(self, workflow: str, champion: int | None, number: int | None, status: str) -> None:
        if champion is not None:
            self.registry.set_alias(workflow, CHAMPION, champion)
        if number is not None and status:
            self.registry.set_version_tags(workflow, number, {"status": status})
            if status == "pending":
                self.registry.set_alias(workflow, CANDIDATE, number)

    def _apply(self, workflow: str, *steps: Callable[[], object], undo: Callable[[], object]) -> None:
        """Run the registry steps; if one fails, undo (best effort) and raise RegistryUnavailable."""
        try:
            for step in steps:
                step()
        except Exception as e:
            try:
                undo()
            except Exception:
                log.exception("%s: undoing a half-applied change failed", workflow)
            raise RegistryUnavailable(f"MLflow at {self.registry.tracking_uri}: not applied: {e}") from e


def _keeping_resources(proposal: LearnedConfig, champion: LearnedConfig | None) -> LearnedConfig:
    """A proposal that plans no resources (the learner's, a threshold tune's) keeps the champion's:
    a version that does not plan them never takes a resource plan back."""
    if proposal.resources or champion is None or not champion.resources:
        return proposal
    return proposal.model_copy(update={"resources": dict(champion.resources)})


def _kind_checked(verdict, champion: LearnedConfig | None):
    """A change of policy kind (bandit <-> softmax) is never a parameter step: it waits for review."""
    if champion is not None and verdict.decision == "auto" and verdict.config.routing.kind != champion.routing.kind:
        verdict.decision = "review"
        verdict.reasons.append(
            f"routing.kind: changes from {champion.routing.kind} to {verdict.config.routing.kind}: review"
        )
    return verdict


def _review_tags(status: str, reviewer: str, reason: str, at: float) -> dict[str, str]:
    return {"status": status, "reviewed_by": reviewer, "reason": reason, "reviewed_at": str(at)}


def _join(reasons: list[str]) -> str:
    return "; ".join(reasons)[:4500]
