"""API tokens in the ledger: a name, a role and the sha256 of the secret.

A secret is ``fw_`` followed by 32 random bytes (URL-safe base64), so a plain
SHA-256 of it cannot be reversed or guessed: no salt or slow hash is needed,
and a secret is looked up by its hash in one indexed query. The secret itself
is never stored; it is shown once, to whoever created the token.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from sqlalchemy import Connection, select, update

from flywheel.ledger.tables import tokens
from flywheel.ledger.records import TokenInfo

ROLES: tuple[str, ...] = ("service", "mlops", "operator", "admin")
"""service: runs and outcomes; mlops: review of proposals; operator: pin, unpin,
rollback; admin: tokens, and every endpoint."""

SECRET_PREFIX = "fw_"


class TokenError(ValueError):
    """A token that cannot be created or revoked; ``field`` names the culprit."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


def new_secret() -> str:
    """A fresh secret: ``fw_`` and 32 random bytes.

    >>> s = new_secret(); s.startswith("fw_") and len(s) == 46
    True
    """
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    """The sha256 hex digest of ``secret``: what the ledger stores and looks up.

    >>> secret_hash("fw_x")[:12]
    '8594db221016'
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def default_name(role: str) -> str:
    """``<role>-<8 random hex>``, for a token created without a name."""
    return f"{role}-{secrets.token_hex(4)}"


def check_role(role: str) -> None:
    if role not in ROLES:
        raise TokenError("role", f"unknown role {role!r}; one of {', '.join(ROLES)}")


def insert(
    connection: Connection, *, name: str, role: str, digest: str, created_by: str
) -> TokenInfo:
    """Store a token in the caller's write transaction; TokenError on a taken name or secret."""
    check_role(role)
    if not name:
        raise TokenError("name", "must not be empty")
    taken = connection.execute(
        select(tokens.c.name, tokens.c.token_hash).where(
            (tokens.c.name == name) | (tokens.c.token_hash == digest)
        )
    ).first()
    if taken is not None:
        if taken.name == name:
            raise TokenError("name", f"a token named {name!r} exists already")
        raise TokenError("secret", "this secret is stored already, under another name")
    info = TokenInfo(name=name, role=role, created_at=time.time(), created_by=created_by)
    connection.execute(
        tokens.insert(),
        [{"name": name, "role": role, "token_hash": digest, "created_at": info.created_at,
          "created_by": created_by, "revoked_at": None}],
    )
    return info


def revoke(connection: Connection, name: str) -> TokenInfo:
    """Mark the token revoked in the caller's write transaction; TokenError if unknown or revoked."""
    row = connection.execute(select(tokens).where(tokens.c.name == name)).first()
    if row is None:
        raise TokenError("name", f"no token named {name!r}")
    if row.revoked_at is not None:
        raise TokenError("name", f"token {name!r} is revoked already")
    at = time.time()
    connection.execute(
        update(tokens).where(tokens.c.name == name, tokens.c.revoked_at.is_(None)).values(revoked_at=at)
    )
    info = _info(row._mapping)
    return TokenInfo(info.name, info.role, info.created_at, info.created_by, revoked_at=at)


def active_by_hash(connection: Connection, digest: str) -> TokenInfo | None:
    """The unrevoked token whose secret hashes to ``digest``; None if unknown or revoked."""
    row = connection.execute(
        select(tokens).where(tokens.c.token_hash == digest, tokens.c.revoked_at.is_(None))
    ).first()
    return None if row is None else _info(row._mapping)


def all_tokens(connection: Connection) -> list[TokenInfo]:
    """Every token, revoked ones included, oldest first."""
    return [_info(r._mapping) for r in connection.execute(select(tokens).order_by(tokens.c.id))]


def has_active(connection: Connection, role: str) -> bool:
    """Whether an unrevoked token has ``role``."""
    found = connection.execute(
        select(tokens.c.id).where(tokens.c.role == role, tokens.c.revoked_at.is_(None)).limit(1)
    ).first()
    return found is not None


def _info(m: Any) -> TokenInfo:
    return TokenInfo(
        name=m["name"],
        role=m["role"],
        created_at=m["created_at"],
        created_by=m["created_by"],
        revoked_at=m["revoked_at"],
    )
