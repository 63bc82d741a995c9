"""API tokens in the ledger on SQLite and PostgreSQL: create, look up, revoke, audit."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from sqlalchemy import select

from flywheel.ledger import Ledger
from flywheel.ledger.tables import tokens
from flywheel.ledger.tokens import TokenError
from tests.ledger.ledger_helpers import race


def test_create_then_look_up_by_secret(ledger: Ledger) -> None:
    info, secret = ledger.create_token("service", name="checkout", created_by="ana")
    assert secret.startswith("fw_") and len(secret) == 46
    assert (info.name, info.role, info.created_by, info.revoked_at) == ("checkout", "service", "ana", None)
    assert ledger.token_principal(secret) == info
    assert ledger.token_principal(secret + "x") is None
    assert ledger.token_principal("") is None
    assert ledger.list_tokens() == [info]
    assert ledger.has_role_token("service") and not ledger.has_role_token("admin")


def test_a_given_secret_and_a_default_name(ledger: Ledger) -> None:
    info, secret = ledger.create_token("mlops", created_by="ops", secret="fw_chosen-secret")
    assert secret == "fw_chosen-secret"
    assert info.name.startswith("mlops-") and len(info.name) == len("mlops-") + 8
    assert ledger.token_principal("fw_chosen-secret") == info


def test_only_the_hash_of_the_secret_is_stored(ledger: Ledger) -> None:
    _, secret = ledger.create_token("operator", name="ops", created_by="ana")
    with ledger.engine.connect() as connection:
        rows = [tuple(r) for r in connection.execute(select(tokens))]
    assert len(rows) == 1
    assert not any(secret in str(value) for value in rows[0])
    assert rows[0][3] == hashlib.sha256(secret.encode()).hexdigest()  # the token_hash column
    assert not hasattr(ledger.list_tokens()[0], "token_hash")


def test_revoked_tokens_no_longer_authenticate(ledger: Ledger) -> None:
    _, secret = ledger.create_token("admin", name="root", created_by="boot")
    assert ledger.has_role_token("admin")
    revoked = ledger.revoke_token("root", actor="ana", reason="leaked in a log")
    assert revoked.revoked_at is not None and revoked.role == "admin"
    assert ledger.token_principal(secret) is None
    assert not ledger.has_role_token("admin")
    listed = ledger.list_tokens()
    assert [(t.name, t.revoked_at) for t in listed] == [("root", revoked.revoked_at)]
    with pytest.raises(ValueError, match="name: token 'root' is revoked already"):
        ledger.revoke_token("root", actor="ana", reason="again")
    with pytest.raises(ValueError, match="name: no token named 'nobody'"):
        ledger.revoke_token("nobody", actor="ana", reason="typo")


def test_create_and_revoke_are_audited_in_the_chain(ledger: Ledger) -> None:
    ledger.append_audit(actor="x", action="pause", subject="wf", before=None, after=None, reason="")
    ledger.create_token("service", name="svc", created_by="cli:ana", reason="checkout service")
    ledger.revoke_token("svc", actor="cli:bo", reason="rotated")
    entries = ledger.audit_entries()
    assert [(e.actor, e.action, e.subject, e.before, e.after, e.reason) for e in entries[1:]] == [
        ("cli:ana", "token.create", "token:svc", None, "service", "checkout service"),
        ("cli:bo", "token.revoke", "token:svc", "service", None, "rotated"),
    ]
    assert ledger.verify_audit() == []


def test_refusals_name_the_field_and_change_nothing(ledger: Ledger) -> None:
    ledger.create_token("service", name="svc", created_by="ana", secret="fw_one")
    with pytest.raises(ValueError, match="name: a token named 'svc' exists already") as dup:
        ledger.create_token("mlops", name="svc", created_by="ana")
    assert isinstance(dup.value, TokenError) and dup.value.field == "name"
    with pytest.raises(ValueError, match="role: unknown role 'root'"):
        ledger.create_token("root", name="other", created_by="ana")
    with pytest.raises(ValueError, match="secret: this secret is stored already"):
        ledger.create_token("admin", name="other", created_by="ana", secret="fw_one")
    assert [t.name for t in ledger.list_tokens()] == ["svc"]
    assert [e.action for e in ledger.audit_entries()] == ["token.create"]  # refusals are not audited
    assert ledger.token_principal("fw_one").role == "service"  # type: ignore[union-attr]


def test_racing_creates_of_one_name_store_it_once(make_ledger: Callable[[], Ledger]) -> None:
    ledgers = [make_ledger(), make_ledger()]  # two engines: the database serializes them
    ledgers[0].upgrade()

    def create(k: int) -> str:
        try:
            ledgers[k % 2].create_token("service", name="same", created_by=f"t{k}")
            return "created"
        except ValueError as e:
            return str(e)

    results = race([lambda k=k: create(k) for k in range(4)])
    assert results.count("created") == 1
    assert all(r == "name: a token named 'same' exists already" for r in results if r != "created")
    assert len(ledgers[1].list_tokens()) == 1
    assert ledgers[1].verify_audit() == [] and len(ledgers[1].audit_entries()) == 1
