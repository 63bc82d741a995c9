"""`flywheel tokens create|list|revoke`: API tokens, straight on the configured ledger.

These act on the database of the settings file (or ``$FLYWHEEL_DATABASE_URL``),
not through the API, so they work before the first admin token exists and while
the service is down. Every change is in the audit trail as ``cli:<os user>``.
"""

from __future__ import annotations

import getpass
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import typer

if TYPE_CHECKING:
    from flywheel.ledger import Ledger

tokens_app = typer.Typer(
    help="API tokens: service (runs, outcomes), mlops (review), operator (pin, rollback), admin (all).",
    no_args_is_help=True,
)
ConfigOpt = typer.Option(
    None, "--config", "-c", help="App settings file (names the ledger; default: the packaged defaults)."
)


def cli_actor() -> str:
    """``cli:<os user>``: who made a change from the command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment
        return "cli:unknown"


@contextmanager
def _ledger(config: Optional[Path]) -> Iterator["Ledger"]:
    from flywheel.services.settings import load_settings
    from flywheel.workflows.loading import ConfigError

    try:
        settings = load_settings(config)
    except ConfigError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None
    ledger = settings.open_ledger()
    try:
        ledger.upgrade()
        yield ledger
    except ValueError as e:
        typer.secho(str(e), fg="red", err=True)
        raise typer.Exit(2) from None
    finally:
        ledger.dispose()


@tokens_app.command("create")
def create(
    role: str = typer.Option(..., "--role", help="service, mlops, operator or admin."),
    name: Optional[str] = typer.Option(None, "--name", help="Unique name (default: <role>-<8 hex>)."),
    reason: str = typer.Option("", "--reason", help="Why: kept in the audit trail."),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Make a token; its secret is printed once, on stdout, and stored nowhere."""
    with _ledger(config) as ledger:
        info, secret = ledger.create_token(role, name=name, created_by=cli_actor(), reason=reason)
    typer.echo(f"Token {info.name!r} (role {info.role}); shown once, store it:", err=True)
    typer.echo(secret)


@tokens_app.command("list")
def list_tokens(config: Optional[Path] = ConfigOpt) -> None:
    """Every token: name, role, who made it and when, revoked or not. Never a secret."""
    with _ledger(config) as ledger:
        found = ledger.list_tokens()
    if not found:
        typer.echo("no tokens")
        return
    typer.echo(f"{'name':<24} {'role':<9} {'created':<20} {'by':<20} status")
    for t in found:
        status = "active" if t.revoked_at is None else f"revoked {_when(t.revoked_at)}"
        typer.echo(f"{t.name:<24} {t.role:<9} {_when(t.created_at):<20} {t.created_by:<20} {status}")


@tokens_app.command("revoke")
def revoke(
    name: str = typer.Argument(..., help="The token's name."),
    reason: str = typer.Option(..., "--reason", help="Why: kept in the audit trail."),
    config: Optional[Path] = ConfigOpt,
) -> None:
    """Revoke a token; a running service refuses it within a few seconds (its cache's ttl)."""
    with _ledger(config) as ledger:
        info = ledger.revoke_token(name, actor=cli_actor(), reason=reason)
    typer.echo(f"revoked {info.name!r} (role {info.role})")


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
