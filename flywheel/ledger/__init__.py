"""The ledger: SQL storage for runs, steps, decisions, outcomes and the audit trail.

Use :class:`Ledger`; it takes and returns the records of
:mod:`flywheel.ledger.records`. The schema is managed by Alembic
(:mod:`flywheel.ledger.migrate`, called by :meth:`Ledger.upgrade`).
"""

from flywheel.ledger.store import DATABASE_URL_ENV, Ledger

__all__ = ["DATABASE_URL_ENV", "Ledger"]
