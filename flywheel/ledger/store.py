"""The ledger: SQL storage of runs, steps, decisions, outcomes and the audit trail.

Every method is synchronous, opens its own connection and transaction, and
takes and returns the plain records of :mod:`flywheel.ledger.records`; no
ORM object leaves. A :class:`Ledger` is safe to share between threads (callers
run its methods through ``asyncio.to_thread``) and between processes on the
same database: the guarantees (compare-and-set resumes, idempotent outcomes,
one audit chain) come from the database, not from in-process locks. On SQLite
one in-process lock also queues this process's writers, which is cheaper than
SQLite's busy-wait between them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from contextlib import contextmanager, nullcontext

from sqlalchemy import Connection, Engine

from flywheel.ledger import audit as audit_trail
from flywheel.ledger import learning as learning_log
from flywheel.ledger import migrate
from flywheel.ledger import outcomes as outcome_log
from flywheel.ledger import runs as run_log
from flywheel.ledger import tokens as token_log
from flywheel.ledger import versions as version_log
from flywheel.ledger.engine import (
    DEFAULT_SYNCHRONOUS,
    SqliteSynchronous,
    create_ledger_engine,
    read_transaction,
    write_transaction,
)
from flywheel.ledger.records import (
    LearningEvent,
    OutboxVersion,
    OutcomeLimits,
    OutcomeJoin,
    AuditEntry,
    OutcomeEvent,
    OutcomeReport,
    RunRecord,
    RunView,
    StoredOutcome,
    TokenInfo,
    WorkflowStats,
)

class AuditAppender(Protocol):
    def __call__(
        self, *, actor: str, action: str, subject: str, before: str | None, after: str | None, reason: str
    ) -> AuditEntry: ...


DATABASE_URL_ENV = "FLYWHEEL_DATABASE_URL"
"""Environment variable whose value, when set, is the ledger's database URL."""


class OutcomeNotStored(RuntimeError):
    """A resume's human outcome could not be stored, so the resume was rolled back."""


class Ledger:
    """Runs, outcomes and the audit trail in SQLite or PostgreSQL.

    >>> ledger = Ledger("sqlite://")  # in memory, for the example
    >>> ledger.dialect
    'sqlite'
    >>> ledger.dispose()
    """

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        synchronous: SqliteSynchronous = DEFAULT_SYNCHRONOUS,
        outcome_limits: OutcomeLimits = OutcomeLimits(),
    ) -> None:
        """Connect lazily to ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

        For a SQLite file the parent directory is created. ``synchronous`` is SQLite's
        ``PRAGMA synchronous`` on every connection (see flywheel.ledger.engine);
        ``outcome_limits`` bound what an outcome may report (larger figures are rejected).
        """
        self._engine: Engine = create_ledger_engine(url, echo=echo, synchronous=synchronous)
        self.outcome_limits = outcome_limits
        self._audit_lock = threading.Lock()
        self._sqlite_write_lock = threading.Lock() if self.dialect == "sqlite" else None

    @classmethod
    def from_env(cls, default_url: str) -> Ledger:
        """A ledger on ``$FLYWHEEL_DATABASE_URL`` when set (and not empty), else on ``default_url``."""
        return cls(os.environ.get(DATABASE_URL_ENV) or default_url)

    @property
    def dialect(self) -> str:
        """The database's dialect name: ``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations and tests; the API is the methods)."""
        return self._engine

    def upgrade(self) -> None:
        """Migrate the schema to the newest revision; a no-op when it is current."""
        with self._sqlite_writers():
            migrate.upgrade(self._engine)

    def dispose(self) -> None:
        """Close the pooled connections."""
        self._engine.dispose()

    # -- runs -------------------------------------------------------------

    def write_runs(self, runs: list[RunRecord]) -> None:
        """Insert new runs or update known ones, with new steps and decisions: one transaction."""
        if not runs:
            return
        with self._write() as connection:
            run_log.write_runs(connection, runs)

    def insert_new_runs(
        self,
        runs: list[RunRecord],
        outcomes: list[list[OutcomeEvent]] | None = None,
        reward_of: Callable[[str, OutcomeEvent, float, float], float] | None = None,
    ) -> list[OutcomeReport] | None:
        """Store runs that are new, with their steps and decisions, and the outcomes the service
        reports on them (`outcomes`, one list per run, rewarded by `reward_of`): one transaction.

        The fast path for runs just started; `write_runs` also updates known runs. Returns one
        report per run when there were outcomes to store, else None.
        """
        if not runs:
            return None
        with self._write() as connection:
            run_log.insert_new_runs(connection, runs)
            if not outcomes or not any(outcomes) or reward_of is None:
                return None
            return outcome_log.record_outcome_batches(connection, outcomes, reward_of, self.outcome_limits)

    def resume_run(self, run_id: str, *, expected_status: str, update: RunRecord) -> bool:
        """Move the run from ``expected_status`` to ``update``'s state, exactly once.

        Returns True, with ``update.steps`` (and its decision, if any) stored in
        the same transaction, when the run was in ``expected_status``; False,
        changing nothing, when it was not (or does not exist).
        """
        with self._write() as connection:
            return run_log.resume_run(connection, run_id, expected_status, update)

    def resume_with_outcome(
        self,
        run_id: str,
        *,
        expected_status: str,
        update: RunRecord,
        outcome: OutcomeEvent,
        reward_of: Callable[[str, OutcomeEvent, float, float], float],
    ) -> OutcomeReport | None:
        """Resume the run (as :meth:`resume_run`) and store its human outcome: one transaction.

        Returns the outcome's report when both were stored; None, changing
        nothing, when the run was not in ``expected_status``. Raises
        :class:`OutcomeNotStored`, changing nothing, when the outcome is not
        stored as new (its event id is taken, or it is malformed).
        """
        with self._write() as connection:
            if not run_log.resume_run(connection, run_id, expected_status, update):
                return None
            report = outcome_log.record_outcomes(connection, [outcome], reward_of)
            if report.new != 1:
                why = report.rejected[0].reason if report.rejected else f"event id {outcome.event_id!r} is taken"
                raise OutcomeNotStored(f"run {run_id}: the human outcome cannot be stored ({why})")
            return report

    def get_run(self, run_id: str) -> RunView | None:
        """The run with its steps (by seq), decision and outcomes (by position); None if unknown."""
        with read_transaction(self._engine) as connection:
            found = run_log.get_run(connection, run_id)
        if found is None:
            return None
        record, stored = found
        return RunView(run=record, outcomes=stored)

    def run_exists(self, run_ids: list[str]) -> dict[str, tuple[str, float, float]]:
        """For the ids that exist: run_id -> (workflow, agent cost, agent latency_s)."""
        if not run_ids:
            return {}
        with read_transaction(self._engine) as connection:
            return run_log.run_facts(connection, run_ids)

    # -- outcomes ---------------------------------------------------------

    def record_outcomes(
        self,
        events: list[OutcomeEvent],
        reward_of: Callable[[str, OutcomeEvent, float, float], float],
    ) -> OutcomeReport:
        """Store the new events with their rewards; count duplicates, list rejections.

        ``reward_of(workflow, event, agent_cost, agent_latency_s)`` gives the
        reward. Committed before returning. See
        :func:`flywheel.ledger.outcomes.record_outcomes` for the rules.
        """
        if not events:
            return OutcomeReport()
        with self._write() as connection:
            return outcome_log.record_outcomes(connection, events, reward_of, self.outcome_limits)

    def record_outcome_batches(
        self,
        batches: list[list[OutcomeEvent]],
        reward_of: Callable[[str, OutcomeEvent, float, float], float],
    ) -> list[OutcomeReport]:
        """Several callers' batches in one transaction (group commit): one report per batch.

        As if each batch were recorded in turn (an event_id accepted in an
        earlier batch is a duplicate in a later one), but with one commit.
        See :func:`flywheel.ledger.outcomes.record_outcome_batches`.
        """
        if not any(batches):
            return [OutcomeReport() for _ in batches]
        with self._write() as connection:
            return outcome_log.record_outcome_batches(connection, batches, reward_of, self.outcome_limits)

    def outcomes_after(
        self, position: int, *, workflow: str | None = None, limit: int = 1000
    ) -> list[StoredOutcome]:
        """Outcomes with a position above ``position`` (of ``workflow`` if given), oldest first."""
        with read_transaction(self._engine) as connection:
            return outcome_log.outcomes_after(connection, position, workflow, limit)

    def joined_outcomes_after(
        self, position: int, *, workflow: str | None = None, limit: int = 1000
    ) -> list[OutcomeJoin]:
        """Outcomes after ``position``, each joined with its run's decision, agent and gate steps."""
        with read_transaction(self._engine) as connection:
            return learning_log.joined_outcomes_after(connection, position, workflow, limit)

    def record_learning_events(self, events: list[LearningEvent]) -> None:
        """Append what the learners noticed (drifts, refused outcomes), as evidence for the next version."""
        if events:
            with self._write() as connection:
                learning_log.record_events(connection, events)

    def learning_events(self, workflow: str, after_id: int = 0) -> list[LearningEvent]:
        with read_transaction(self._engine) as connection:
            return learning_log.events_of(connection, workflow, after_id)

    def last_position(self) -> int:
        """The highest outcome position stored (0 when none)."""
        with read_transaction(self._engine) as connection:
            return outcome_log.last_position(connection)

    def workflow_stats(self, workflow: str) -> WorkflowStats:
        """Runs, waiting runs, outcomes, mean reward and route shares of ``workflow``."""
        with read_transaction(self._engine) as connection:
            return outcome_log.workflow_stats(connection, workflow)

    # -- audit ------------------------------------------------------------

    def append_audit(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        before: str | None,
        after: str | None,
        reason: str,
    ) -> AuditEntry:
        """Append a hash-chained entry to the audit trail and return it."""
        with self._audit_lock, self._write() as connection:
            return audit_trail.append(
                connection,
                actor=actor,
                action=action,
                subject=subject,
                before=before,
                after=after,
                reason=reason,
            )

    def audit_entries(self) -> list[AuditEntry]:
        """The whole audit trail, oldest first."""
        with read_transaction(self._engine) as connection:
            return audit_trail.entries(connection)

    def verify_audit(self) -> list[str]:
        """Problems in the audit trail, each naming an entry id; [] when intact."""
        return audit_trail.verify(self.audit_entries())

    @contextmanager
    def governed(self) -> Iterator[AuditAppender]:
        """A write transaction holding the audit chain, for a change to what is live.

        Yields ``append(actor=, action=, subject=, before=, after=, reason=)``.
        Changes made in the registry inside the block and the entries appended
        are serialized against every other governed change (other processes
        included: the audit table is locked on PostgreSQL, the database on
        SQLite); the entries commit on normal exit and vanish if the block raises.
        Nothing else may write the ledger from this thread inside the block.
        """
        with self._audit_lock, self._write() as connection:
            self._lock_audit(connection)

            def append(**fields: str | None) -> AuditEntry:
                return audit_trail.append(connection, **fields)  # type: ignore[arg-type]

            yield append

    @contextmanager
    def governed_publication(self, outbox_id: int) -> Iterator[version_log.GovernedPublication | None]:
        """The governed transaction (see :meth:`governed`) that decides a waiting version.

        Yields None when the version is published already (another publisher
        decided it), else a publication whose audit entries and published mark
        commit together.
        """
        with self._audit_lock, self._write() as connection:
            self._lock_audit(connection)
            waiting = version_log.still_waiting(connection, outbox_id)
            yield version_log.GovernedPublication(connection, outbox_id) if waiting else None

    # -- version outbox ---------------------------------------------------

    def enqueue_version(
        self,
        *,
        workflow: str,
        proposed_by: str,
        position: int,
        config: dict[str, Any],
        evidence: dict[str, float],
        learner_state: bytes | None,
        policy_state: bytes | None,
    ) -> int:
        """Keep a proposed version until the registry has it; returns its outbox id."""
        with self._write() as connection:
            return version_log.enqueue(
                connection,
                workflow=workflow,
                proposed_by=proposed_by,
                position=position,
                config=config,
                evidence=evidence,
                learner_state=learner_state,
                policy_state=policy_state,
            )

    def unpublished_versions(self, limit: int = 100) -> list[OutboxVersion]:
        """Versions not yet in the registry, oldest first."""
        with read_transaction(self._engine) as connection:
            return version_log.unpublished(connection, limit)

    def claim_version(self, claimant: str, *, lease_s: float) -> OutboxVersion | None:
        """Claim the next version to publish for ``claimant`` (a lease of ``lease_s``); None when
        none is free. See :mod:`flywheel.ledger.versions` for which versions are claimable."""
        with self._write() as connection:
            return version_log.claim_next(connection, claimant, time.time(), lease_s)

    def mark_version_published(self, outbox_id: int, number: int) -> None:
        with self._write() as connection:
            version_log.mark_published(connection, outbox_id, number)

    def mark_version_failed(self, outbox_id: int, error: str, *, claimant: str | None = None) -> None:
        """Count a failed attempt; with ``claimant``, also release its claim."""
        with self._write() as connection:
            version_log.mark_failed(connection, outbox_id, error, claimant)

    # -- API tokens -------------------------------------------------------

    def create_token(
        self,
        role: str,
        *,
        name: str | None = None,
        created_by: str,
        secret: str | None = None,
        reason: str = "",
    ) -> tuple[TokenInfo, str]:
        """Store a token with ``role``; returns it and its secret (shown once, never stored).

        The secret is ``fw_`` + 32 random bytes unless ``secret`` is given; the
        name defaults to ``<role>-<8 hex>``. Raises ValueError (a
        :class:`~flywheel.ledger.tokens.TokenError` naming the field)
        for an unknown role, a taken name or a secret stored already. The audit
        entry ``token.create`` is appended in the same transaction.
        """
        token_log.check_role(role)
        secret = secret or token_log.new_secret()
        name = name if name is not None else token_log.default_name(role)
        with self._audit_lock, self._write() as connection:
            self._lock_audit(connection)  # also serializes token names across processes
            info = token_log.insert(
                connection, name=name, role=role, digest=token_log.secret_hash(secret), created_by=created_by
            )
            audit_trail.append(
                connection, actor=created_by, action="token.create", subject=f"token:{name}",
                before=None, after=role, reason=reason,
            )
        return info, secret

    def revoke_token(self, name: str, *, actor: str, reason: str) -> TokenInfo:
        """Revoke the token ``name`` (audited as ``token.revoke``); ValueError if unknown or revoked."""
        with self._audit_lock, self._write() as connection:
            self._lock_audit(connection)
            info = token_log.revoke(connection, name)
            audit_trail.append(
                connection, actor=actor, action="token.revoke", subject=f"token:{name}",
                before=info.role, after=None, reason=reason,
            )
        return info

    def token_principal(self, secret: str) -> TokenInfo | None:
        """The unrevoked token of ``secret``; None when unknown or revoked."""
        with read_transaction(self._engine) as connection:
            return token_log.active_by_hash(connection, token_log.secret_hash(secret))

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, revoked ones included, oldest first (no secrets, no hashes)."""
        with read_transaction(self._engine) as connection:
            return token_log.all_tokens(connection)

    def has_role_token(self, role: str) -> bool:
        """Whether an unrevoked token has ``role``."""
        with read_transaction(self._engine) as connection:
            return token_log.has_active(connection, role)

    # -- helpers ----------------------------------------------------------

    def _sqlite_writers(self) -> threading.Lock | nullcontext[None]:
        return self._sqlite_write_lock if self._sqlite_write_lock is not None else nullcontext()

    @staticmethod
    def _lock_audit(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql("LOCK TABLE audit IN SHARE ROW EXCLUSIVE MODE")

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._sqlite_writers(), write_transaction(self._engine) as connection:
            yield connection

    def __repr__(self) -> str:
        return f"Ledger({self._engine.url.render_as_string(hide_password=True)!r})"
