"""The ledger: SQL storage for runs, steps, decisions, outcomes and the audit trail.

Use :class:`Ledger`; it takes and returns the records of
:mod:`flywheel.workflows.records`. The schema is managed by Alembic
(:mod:`flywheel.workflows.ledger.migrate`, called by :meth:`Ledger.upgrade`).
"""

from flywheel.workflows.ledger.store import DATABASE_URL_ENV, Ledger

__all__ = ["DATABASE_URL_ENV", "Ledger"]
