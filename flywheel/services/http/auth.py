"""Bearer tokens with roles on the HTTP API.

Every endpoint but ``GET /v1/health`` takes ``Depends(require(...))``: the
caller sends ``Authorization: Bearer <token>``; the token's role must be one of
those named (``admin`` is allowed everywhere; ``require()`` with no role lets
any valid token in). No token, or one that is unknown or revoked, is 401 with
``WWW-Authenticate: Bearer``; a valid token of another role is 403. Errors have
the API's format: ``{"detail": [{"loc": ["header", "authorization"], "msg": ...}]}``.

Tokens live in the ledger, hashed. Lookups are cached per app
(``app.state.token_cache``, a :class:`TokenCache`) for a few seconds, so the
request path rarely queries the ledger; a revoked token therefore stops working
within ``ttl_s``.

Each request with a token is counted by the app's :class:`Throttle` (``app.state.throttle``):
an unknown token counts against the client's address, and an address over
``limits.failed_auth_per_client`` is 429 (``Retry-After``) before its token is even looked up;
a valid token over ``limits.per_token`` is 429 too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from flywheel.ledger.tokens import ROLES, TokenError, secret_hash
from flywheel.services.http.throttle import Throttle
from flywheel.services.limit_settings import LimitSettings
from flywheel.ledger.records import TokenInfo

if TYPE_CHECKING:
    from flywheel.ledger import Ledger

__all__ = ["ROLES", "Principal", "TokenCache", "require", "ensure_admin_token"]

ADMIN = "admin"
ENV_ADMIN_NAME = "admin-env"
MIN_ENV_TOKEN_LENGTH = 32

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token: `Authorization: Bearer fw_...` (flywheel tokens create --role ROLE).",
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name and role."""

    name: str
    role: str


class TokenCache:
    """sha256 of a secret -> its Principal (or None: unknown), each kept ``ttl_s`` seconds.

    Unknown secrets are kept ``min(ttl_s, unknown_ttl_s)`` seconds, so a burst of
    bad tokens costs few queries and a token just created is soon found. At
    ``max_entries`` the expired entries are dropped, and all of them if none is.
    Used from one event loop; no lock.
    """

    def __init__(
        self,
        ttl_s: float = 5.0,
        *,
        unknown_ttl_s: float = 1.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.ttl_s = ttl_s
        self.unknown_ttl_s = min(ttl_s, unknown_ttl_s)
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, Principal | None]] = {}

    async def principal(
        self, secret: str, lookup: Callable[[str], TokenInfo | None]
    ) -> Principal | None:
        """The principal of ``secret``: cached, else ``lookup(secret)`` in a thread."""
        digest = secret_hash(secret)
        now = self._clock()
        cached = self._entries.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        info = await asyncio.to_thread(lookup, secret)
        found = None if info is None else Principal(name=info.name, role=info.role)
        self._put(digest, found, now)
        return found

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _put(self, digest: str, found: Principal | None, now: float) -> None:
        if len(self._entries) >= self.max_entries and digest not in self._entries:
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        ttl = self.ttl_s if found is not None else self.unknown_ttl_s
        self._entries[digest] = (now + ttl, found)


_DENIED_TYPES = {401: "unauthorized", 403: "forbidden", 429: "rate_limited"}


def _denied(status: int, message: str, retry_after: int | None = None) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if retry_after is not None:
        headers = {"Retry-After": str(retry_after)}
    return HTTPException(
        status_code=status,
        detail=[{"loc": ["header", "authorization"], "msg": message, "type": _DENIED_TYPES[status]}],
        headers=headers,
    )


def throttle(request: Request) -> Throttle:
    """The app's rate limits (``app.state.throttle``), made with the default limits on first use."""
    state = request.app.state
    found = getattr(state, "throttle", None)
    if found is None:
        defaults = LimitSettings()
        found = state.throttle = Throttle(defaults.per_token, defaults.failed_auth_per_client)
    return found


def token_cache(request: Request) -> TokenCache:
    """The app's cache (``app.state.token_cache``), made on first use."""
    state = request.app.state
    cache = getattr(state, "token_cache", None)
    if cache is None:
        cache = state.token_cache = TokenCache()
    return cache


def require(*roles: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency that yields the caller's Principal when its role is in ``roles``
    (or is admin; with no roles, any valid token). Unknown role names fail here, at build."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"require: unknown roles {unknown}; roles are {', '.join(ROLES)}")
    allowed = frozenset(roles) | {ADMIN} if roles else frozenset(ROLES)
    needed = ", ".join(sorted(allowed))

    async def principal(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
    ) -> Principal:
        if credentials is None or not credentials.credentials:
            raise _denied(401, "missing token: send Authorization: Bearer <token>")
        limits = throttle(request)
        address = request.client.host if request.client else "unknown"
        wait = limits.auth_blocked(address)
        if wait is not None:
            raise _denied(429, "too many failed authentications from this address; retry later", wait)
        runtime = await request.app.state.holder.get()
        found = await token_cache(request).principal(credentials.credentials, runtime.ledger.token_principal)
        if found is None:
            limits.auth_failed(address)
            raise _denied(401, "unknown or revoked token")
        wait = limits.take(found.name)
        if wait is not None:
            raise _denied(429, f"token {found.name!r} is over its rate limit; retry later", wait)
        if found.role not in allowed:
            raise _denied(403, f"token {found.name!r} has role {found.role!r}; this endpoint needs one of: {needed}")
        return found

    return principal


def ensure_admin_token(ledger: "Ledger", env_token: str | None) -> str | None:
    """Make sure an admin can get in; returns a new admin secret to print once, or None.

    With ``env_token`` (``$FLYWHEEL_ADMIN_TOKEN``): store it as an admin token
    named ``admin-env`` unless stored already; returns None (its owner knows it).
    Otherwise, when no unrevoked admin token exists, create one named ``admin``
    and return its secret. Raises ValueError for an env token shorter than 32
    characters or one that was revoked.
    """
    if env_token:
        if len(env_token) < MIN_ENV_TOKEN_LENGTH:
            raise ValueError(
                f"FLYWHEEL_ADMIN_TOKEN: shorter than {MIN_ENV_TOKEN_LENGTH} characters; make one with "
                "python -c 'import secrets; print(\"fw_\" + secrets.token_urlsafe(32))'"
            )
        if ledger.token_principal(env_token) is not None:
            return None
        try:
            _create_admin(ledger, ENV_ADMIN_NAME, env_token, "FLYWHEEL_ADMIN_TOKEN at start")
        except TokenError as e:
            if e.field == "secret":
                raise ValueError("FLYWHEEL_ADMIN_TOKEN: this token was revoked; set a new one") from None
            raise
        return None
    if ledger.has_role_token(ADMIN):
        return None
    _, secret = _create_admin(ledger, ADMIN, None, "first admin token")
    return secret


def _create_admin(ledger: "Ledger", name: str, secret: str | None, reason: str) -> tuple[TokenInfo, str]:
    """An admin token named ``name``, or ``name-<unix time>`` when that name is taken (revoked)."""
    try:
        return ledger.create_token(ADMIN, name=name, created_by="bootstrap", secret=secret, reason=reason)
    except TokenError as e:
        if e.field != "name":
            raise
    return ledger.create_token(
        ADMIN, name=f"{name}-{int(time.time())}", created_by="bootstrap", secret=secret, reason=reason
    )
