"""Tokens and roles on the HTTP API, in-process: the role-by-endpoint matrix, the token
endpoints, the cache, revocation, and the first admin token."""

from __future__ import annotations

import asyncio
import re
from typing import get_args

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from flywheel.services.http.tokens import Role
from flywheel.services.http.auth import ROLES, TokenCache, ensure_admin_token, require
from flywheel.cli.local_server import local_api
from flywheel.services.limit_settings import LimitSettings
from flywheel.services.settings import load_settings
from flywheel.ledger import Ledger
from flywheel.ledger.records import TokenInfo

ALL = set(ROLES)
REVIEW = {"mlops", "operator"}
OPEN = None  # no token needed

# (method, path template) -> the roles allowed (admin is allowed everywhere). A new
# endpoint under /v1 fails test_every_v1_route_is_in_the_matrix until it is added here.
CORE: dict[tuple[str, str], set[str] | None] = {
    ("GET", "/v1/health"): OPEN,
    ("GET", "/v1/workflows"): ALL,
    ("GET", "/v1/workflows/{workflow}/stats"): ALL,
    ("POST", "/v1/workflows/{workflow}/runs"): {"service"},
    ("GET", "/v1/runs/{run_id}"): {"service"},
    ("POST", "/v1/runs/{run_id}/resume"): {"service"},
    ("POST", "/v1/outcomes"): {"service"},
    ("POST", "/v1/tokens"): {"admin"},
    ("GET", "/v1/tokens"): {"admin"},
}
GOVERNANCE: dict[tuple[str, str], set[str] | None] = {
    ("GET", "/v1/proposals"): REVIEW,
    ("GET", "/v1/workflows/{workflow}/versions/{version}"): REVIEW,
    ("POST", "/v1/workflows/{workflow}/versions/{version}/approve"): {"mlops"},
    ("POST", "/v1/workflows/{workflow}/versions/{version}/reject"): {"mlops"},
    ("POST", "/v1/workflows/{workflow}/pin"): {"operator"},
    ("POST", "/v1/workflows/{workflow}/unpin"): {"operator"},
    ("POST", "/v1/workflows/{workflow}/rollback"): {"operator"},
    ("GET", "/v1/workflows/{workflow}/history"): REVIEW,
    ("GET", "/v1/audit/verify"): REVIEW,
}
OBSERVE: dict[tuple[str, str], set[str] | None] = {
    ("GET", "/v1/runs/{run_id}/trace"): ALL,
    ("GET", "/v1/dashboard/me"): ALL,
    ("GET", "/v1/dashboard/workflows/{workflow}/series"): REVIEW,
    ("GET", "/v1/dashboard/workflows/{workflow}/runs"): REVIEW,
}
OPENAI: dict[tuple[str, str], set[str] | None] = {
    ("GET", "/v1/models"): ALL,
    ("POST", "/v1/chat/completions"): {"service"},
}
EXPECTED = {**CORE, **GOVERNANCE, **OBSERVE, **OPENAI}
PATH_VALUES = {"workflow": "ticket_triage", "run_id": "no-such-run", "version": "1"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(client, ledger, {role: secret}) over a fresh SQLite ledger."""
    db = tmp_path_factory.mktemp("auth") / "ledger.db"
    settings = load_settings("configs/app.yaml")
    # the role matrix calls every route with every role: more than one token may send a second
    settings = settings.model_copy(update={"database_url": f"sqlite:///{db}",
                                           "limits": LimitSettings(per_token="100000 per second",
                                                                   failed_auth_per_client="100000 per second")})
    ledger = Ledger(settings.resolved_database_url())
    ledger.upgrade()
    secrets = {role: ledger.create_token(role, name=f"t-{role}", created_by="test")[1] for role in ROLES}
    with TestClient(local_api(settings)) as client:
        yield client, ledger, secrets
    ledger.dispose()


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _app_routes(app) -> set[tuple[str, str]]:
    found = {(m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops}
    found |= {(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in r.methods}
    return {(m, p) for m, p in found if p.startswith("/v1") and m not in ("HEAD", "OPTIONS")}


def _call(client: TestClient, method: str, template: str, headers: dict[str, str]):
    path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], template)
    body = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return client.request(method, path, headers=headers, **body)


def _is_auth_error(r, status: int) -> bool:
    return (
        r.status_code == status
        and r.json()["detail"][0]["loc"] == ["header", "authorization"]
        and (status != 401 or r.headers.get("www-authenticate") == "Bearer")
    )


def test_every_v1_route_is_in_the_matrix(world):
    client, _, _ = world
    routes = _app_routes(client.app)
    assert routes - set(EXPECTED) == set(), "endpoints without an entry in EXPECTED"
    assert set(CORE) <= routes


def test_role_matrix(world):
    client, _, secrets = world
    problems = []
    for method, template in sorted(_app_routes(client.app)):
        allowed = EXPECTED[(method, template)]
        where = f"{method} {template}"
        if allowed is OPEN:
            if _call(client, method, template, {}).status_code != 200:
                problems.append(f"{where}: not open without a token")
            continue
        if not _is_auth_error(_call(client, method, template, {}), 401):
            problems.append(f"{where}: no token is not a 401 in the API's format")
        if not _is_auth_error(_call(client, method, template, _bearer("fw_bogus")), 401):
            problems.append(f"{where}: a bogus token is not a 401")
        for role in ROLES:
            r = _call(client, method, template, _bearer(secrets[role]))
            if role in allowed or role == "admin":
                if r.status_code in (401, 403):
                    problems.append(f"{where}: role {role} refused ({r.status_code}: {r.text})")
            elif not _is_auth_error(r, 403):
                problems.append(f"{where}: role {role} got {r.status_code}, not 403")
    assert problems == []


def test_refusals_say_what_is_wrong(world):
    client, _, secrets = world
    missing = client.get("/v1/workflows")
    assert missing.json() == {
        "detail": [{"loc": ["header", "authorization"], "msg": "missing token: send Authorization: Bearer <token>",
                    "type": "unauthorized"}]
    }
    assert client.get("/v1/workflows", headers={"Authorization": "Basic abc"}).status_code == 401
    wrong = client.get("/v1/runs/x", headers=_bearer(secrets["mlops"]))
    assert wrong.status_code == 403
    assert wrong.json()["detail"][0]["msg"] == (
        "token 't-mlops' has role 'mlops'; this endpoint needs one of: admin, service"
    )


def test_admin_makes_a_token_that_works_and_lists_tokens_without_secrets(world):
    client, ledger, secrets = world
    admin = _bearer(secrets["admin"])
    made = client.post("/v1/tokens", json={"role": "service", "name": "checkout"}, headers=admin)
    assert made.status_code == 201, made.text
    body = made.json()
    assert set(body) == {"name", "role", "token"} and body["name"] == "checkout" and body["role"] == "service"
    r = client.get("/v1/runs/no-such-run", headers=_bearer(body["token"]))
    assert r.status_code == 404  # authenticated, and the run is unknown
    listed = client.get("/v1/tokens", headers=admin)
    assert listed.status_code == 200
    checkout = next(t for t in listed.json() if t["name"] == "checkout")
    assert checkout["created_by"] == "t-admin" and checkout["revoked_at"] is None
    assert body["token"] not in listed.text and "hash" not in listed.text
    audit = ledger.audit_entries()[-1]
    assert (audit.actor, audit.action, audit.subject) == ("t-admin", "token.create", "token:checkout")
    again = client.post("/v1/tokens", json={"role": "mlops", "name": "checkout"}, headers=admin)
    assert again.status_code == 409 and again.json()["detail"][0]["loc"] == ["body", "name"]
    bad = client.post("/v1/tokens", json={"role": "root"}, headers=admin)
    assert bad.status_code == 422 and "role" in bad.text
    unnamed = client.post("/v1/tokens", json={"role": "operator"}, headers=admin).json()
    assert unnamed["name"].startswith("operator-")


def test_a_revoked_token_is_refused_once_the_cache_entry_expires(world):
    client, ledger, _ = world
    now = [1000.0]
    previous = client.app.state.token_cache
    client.app.state.token_cache = TokenCache(ttl_s=5.0, clock=lambda: now[0])
    try:
        _, secret = ledger.create_token("service", name="short-lived", created_by="test")
        assert client.get("/v1/runs/x", headers=_bearer(secret)).status_code == 404
        ledger.revoke_token("short-lived", actor="test", reason="leaked")
        assert client.get("/v1/runs/x", headers=_bearer(secret)).status_code == 404  # cached
        now[0] += 5.01
        r = client.get("/v1/runs/x", headers=_bearer(secret))
        assert r.status_code == 401 and r.json()["detail"][0]["msg"] == "unknown or revoked token"
    finally:
        client.app.state.token_cache = previous


def test_the_cache_spares_the_ledger_and_keeps_unknown_tokens_briefly():
    now = [0.0]
    calls: list[str] = []
    info = TokenInfo(name="svc", role="service", created_at=0.0, created_by="t")

    def lookup(secret: str) -> TokenInfo | None:
        calls.append(secret)
        return info if secret == "fw_good" else None

    cache = TokenCache(ttl_s=5.0, unknown_ttl_s=1.0, clock=lambda: now[0])

    async def ask(secret: str):
        return await cache.principal(secret, lookup)

    assert asyncio.run(ask("fw_good")).role == "service"
    assert asyncio.run(ask("fw_bad")) is None
    now[0] = 0.9
    asyncio.run(ask("fw_good")), asyncio.run(ask("fw_bad"))
    assert calls == ["fw_good", "fw_bad"]
    now[0] = 1.5  # the unknown entry expired, the known one not
    asyncio.run(ask("fw_good")), asyncio.run(ask("fw_bad"))
    assert calls == ["fw_good", "fw_bad", "fw_bad"]
    small = TokenCache(max_entries=2, clock=lambda: now[0])
    for s in ("a", "b", "c"):
        asyncio.run(small.principal(s, lookup))
    assert len(small) <= 2


def test_require_refuses_unknown_roles_and_the_schema_knows_the_roles():
    with pytest.raises(ValueError, match="unknown roles \\['root'\\]"):
        require("root")
    assert get_args(Role) == ROLES


def test_ensure_admin_token(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.upgrade()
    first = ensure_admin_token(ledger, None)
    assert first is not None and ledger.token_principal(first).name == "admin"  # type: ignore[union-attr]
    assert ensure_admin_token(ledger, None) is None  # one exists: nothing new
    env = "fw_" + "e" * 40
    assert ensure_admin_token(ledger, env) is None
    assert ledger.token_principal(env) == next(t for t in ledger.list_tokens() if t.name == "admin-env")
    assert ensure_admin_token(ledger, env) is None and len(ledger.list_tokens()) == 2  # stored once
    with pytest.raises(ValueError, match="FLYWHEEL_ADMIN_TOKEN: shorter than 32"):
        ensure_admin_token(ledger, "fw_short")
    ledger.revoke_token("admin-env", actor="test", reason="rotate")
    with pytest.raises(ValueError, match="FLYWHEEL_ADMIN_TOKEN: this token was revoked"):
        ensure_admin_token(ledger, env)
    ledger.revoke_token("admin", actor="test", reason="rotate")
    fresh = ensure_admin_token(ledger, None)  # no admin left: a new one, under a new name
    info = ledger.token_principal(fresh)  # type: ignore[arg-type]
    assert info is not None and info.role == "admin" and info.name.startswith("admin-")
    assert [e.action for e in ledger.audit_entries()].count("token.create") == 3
    ledger.dispose()
