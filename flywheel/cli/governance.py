"""CLI of review and operators: `flywheel proposals ...`, `pin`, `unpin`, `rollback`, `history`,
`audit verify`. They call the running service's HTTP API with a token (FLYWHEEL_TOKEN), so
the service checks the role and names the actor; `audit verify` can also read the ledger
directly (--config), for an auditor without the service."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Optional

import typer

proposals_app = typer.Typer(help="Review proposed versions (role mlops).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)

UrlOpt = typer.Option(None, "--url", help="Service URL (default: $FLYWHEEL_URL or http://127.0.0.1:8000).")
TokenOpt = typer.Option(None, "--token", help="API token (default: $FLYWHEEL_TOKEN).")
JsonOpt = typer.Option(False, "--json", help="Print the raw JSON.")


def _call(method: str, path: str, url: str | None, token: str | None, body: dict | None = None,
          params: dict | None = None) -> Any:
    import httpx

    base = url or os.environ.get("FLYWHEEL_URL") or "http://127.0.0.1:8000"
    token = token or os.environ.get("FLYWHEEL_TOKEN")
    if not token:
        typer.secho("no token: pass --token or set FLYWHEEL_TOKEN", fg="red", err=True)
        raise typer.Exit(2)
    try:
        r = httpx.request(method, f"{base}{path}", json=body, params=params, timeout=60,
                          headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as e:
        typer.secho(f"cannot reach the service at {base}: {e}", fg="red", err=True)
        raise typer.Exit(1) from None
    if r.status_code >= 400:
        try:
            msgs = "; ".join(d.get("msg", str(d)) for d in r.json().get("detail", []))
        except Exception:
            msgs = r.text
        typer.secho(f"{r.status_code}: {msgs}", fg="red", err=True)
        raise typer.Exit(1)
    return r.json()


def _when(t: float | str | None) -> str:
    if t in (None, ""):
        return "-"
    return dt.datetime.fromtimestamp(float(t)).strftime("%Y-%m-%d %H:%M:%S")


def _candidate(workflow: str, url: str | None, token: str | None) -> int:
    found = _call("GET", "/v1/proposals", url, token, params={"workflow": workflow})["proposals"]
    waiting = [p for p in found if p["candidate"]] or found
    if not waiting:
        typer.secho(f"{workflow}: no proposal waits for review", fg="red", err=True)
        raise typer.Exit(1)
    return waiting[-1]["number"]


@proposals_app.command("list")
def proposals_list(workflow: Optional[str] = typer.Argument(None), url: Optional[str] = UrlOpt,
                   token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Versions waiting for review."""
    found = _call("GET", "/v1/proposals", url, token, params={"workflow": workflow} if workflow else None)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    if not found["proposals"]:
        typer.echo("no proposals wait for review")
    for p in found["proposals"]:
        typer.echo(f"{p['label']:<28} {p['status']:<9} by {p['proposed_by']:<10} {_when(p['created_at'])}  "
                   f"{p['reason'] or ''}")


def _show(workflow: str, number: int | None, url: str | None, token: str | None) -> dict:
    n = number if number is not None else _candidate(workflow, url, token)
    return _call("GET", f"/v1/workflows/{workflow}/versions/{n}", url, token)


def _print_diff(p: dict) -> None:
    base = f"v{p['champion']}" if p["champion"] is not None else "(none)"
    typer.echo(f"diff against the champion {base}:")
    if not p["diff"]:
        typer.echo("  (no parameter changes)")
    for d in p["diff"]:
        a, b = d["champion"], d["proposal"]
        delta = f"  ({b - a:+.4g})" if a is not None and b is not None else ""
        typer.echo(f"  {d['parameter']:<32} {a if a is not None else '-':>10} -> {b if b is not None else '-'}{delta}")


@proposals_app.command("show")
def proposals_show(workflow: str, number: Optional[int] = typer.Argument(None, help="Default: the candidate."),
                   url: Optional[str] = UrlOpt, token: Optional[str] = TokenOpt, as_json: bool = JsonOpt) -> None:
    """A proposal: its diff against the champion, its evidence and what proposed it."""
    p = _show(workflow, number, url, token)
    if as_json:
        typer.echo(json.dumps(p, indent=2))
        return
    v = p["version"]
    typer.echo(f"{v['label']}  status={v['status']}  proposed by {v['proposed_by']} at {_when(v['created_at'])}")
    if v["policy_notes"]:
        typer.echo(f"policy: {v['policy_notes']}")
    _print_diff(p)
    ev = p["evidence"]
    gain, se = p["estimated_gain"], p["estimated_gain_se"]
    if gain is not None:
        typer.echo(f"estimated gain (SNIPS vs logged): {gain:+.4f} ± {1.96 * (se or 0):.4f} (95%), "
                   f"n={int(ev.get('estimated_gain_n', 0))}")
    typer.echo(f"outcomes seen: {int(ev.get('outcomes', 0))}   drift events: {int(p['drift_events'] or 0)}   "
               f"mean reward: {ev.get('reward_mean', 0):.4f}")


@proposals_app.command("diff")
def proposals_diff(workflow: str, number: Optional[int] = typer.Argument(None, help="Default: the candidate."),
                   url: Optional[str] = UrlOpt, token: Optional[str] = TokenOpt) -> None:
    """The proposal's parameter changes against the champion."""
    _print_diff(_show(workflow, number, url, token))


def _print_change(c: dict) -> None:
    typer.echo(f"{c['workflow']}: {c['action']} v{c['number']} -> status {c['status']}; "
               f"live: {c['live_version'] or '(initial config)'}")


@proposals_app.command("approve")
def proposals_approve(workflow: str, number: Optional[int] = typer.Argument(None, help="Default: the candidate."),
                      reason: str = typer.Option(..., "--reason", help="Why."),
                      url: Optional[str] = UrlOpt, token: Optional[str] = TokenOpt) -> None:
    """Make a pending version champion (the token names the reviewer)."""
    n = number if number is not None else _candidate(workflow, url, token)
    _print_change(_call("POST", f"/v1/workflows/{workflow}/versions/{n}/approve", url, token, {"reason": reason}))


@proposals_app.command("reject")
def proposals_reject(workflow: str, number: Optional[int] = typer.Argument(None, help="Default: the candidate."),
                     reason: str = typer.Option(..., "--reason", help="Why."),
                     url: Optional[str] = UrlOpt, token: Optional[str] = TokenOpt) -> None:
    """Reject a pending version, with the reason."""
    n = number if number is not None else _candidate(workflow, url, token)
    _print_change(_call("POST", f"/v1/workflows/{workflow}/versions/{n}/reject", url, token, {"reason": reason}))


def pin(workflow: str, version: int = typer.Option(..., "--version", help="Version number to hold live."),
        reason: str = typer.Option(..., "--reason", help="Why."),
        url: Optional[str] = UrlOpt, token: Optional[str] = TokenOpt) -> None:
    """Hold a version live; learners keep proposing, nothing goes live until unpinned (role operator)."""
    _print_change(_call("POST", f"/v1/workflows/{workflow}/pin", url, token,
                        {"version": version, "reason": reason}))


def unpin(workflow: str, reason: str = typer.Option("released", "--reason", help="Why."),
          url: Optional[str] = UrlOpt, token: Optional[str] = TokenOpt) -> None:
    """Release the pin (role operator)."""
    _print_change(_call("POST", f"/v1/workflows/{workflow}/unpin", url, token, {"reason": reason}))


def rollback(workflow: str, to: Optional[int] = typer.Option(None, "--to", help="Default: the previous champion."),
             reason: str = typer.Option(..., "--reason", help="Why."),
             hold: bool = typer.Option(False, "--pin", help="Also pin it, so learning cannot replace it."),
             url: Optional[str] = UrlOpt, token: Optional[str] = TokenOpt) -> None:
    """Restore an earlier version exactly (role operator)."""
    _print_change(_call("POST", f"/v1/workflows/{workflow}/rollback", url, token,
                        {"to": to, "reason": reason, "pin": hold}))


def history(workflow: str, url: Optional[str] = UrlOpt, token: Optional[str] = TokenOpt,
            as_json: bool = JsonOpt) -> None:
    """Every version (who or what made it, its status, reviewer, reason) and every audited change."""
    h = _call("GET", f"/v1/workflows/{workflow}/history", url, token)
    if as_json:
        typer.echo(json.dumps(h, indent=2))
        return
    if h["pinned"]:
        p = h["pinned"]
        typer.secho(f"PINNED at v{p.get('pinned_version')} by {p.get('pinned_by')}: {p.get('pinned_reason')}",
                    fg="yellow")
    typer.echo("versions:")
    for v in h["versions"]:
        role = "champion" if v["champion"] else "candidate" if v["candidate"] else ""
        who = f"reviewed by {v['reviewed_by']}" if v["reviewed_by"] else f"by {v['proposed_by']}"
        typer.echo(f"  v{v['number']:<5} {_when(v['created_at'])} {v['status']:<10} {role:<9} {who}: "
                   f"{v['reason'] or ''}")
    typer.echo("changes:")
    for e in h["events"]:
        typer.echo(f"  #{e['id']:<5} {_when(e['at'])} {e['actor']:<14} {e['action']:<13} {e['subject']:<24} "
                   f"{e['before'] or '-'} -> {e['after'] or '-'}: {e['reason']}")


@audit_app.command("verify")
def audit_verify(
    config: Optional[Path] = typer.Option(None, "--config", "-c",
                                          help="Read this app's ledger directly instead of asking the service."),
    url: Optional[str] = UrlOpt, token: Optional[str] = TokenOpt,
) -> None:
    """Check the audit trail's hash chain; names every edited, inserted or deleted entry. Exit 1 if broken."""
    if config is not None:
        from flywheel.services.settings import load_settings

        ledger = load_settings(config).open_ledger()
        result = {"entries": len(ledger.audit_entries()), "problems": ledger.verify_audit()}
    else:
        result = _call("GET", "/v1/audit/verify", url, token)
    if result["problems"]:
        for p in result["problems"]:
            typer.secho(p, fg="red")
        typer.secho(f"audit trail BROKEN: {len(result['problems'])} problem(s) in {result['entries']} entries",
                    fg="red")
        raise typer.Exit(1)
    typer.secho(f"audit trail intact: {result['entries']} entries, hash chain verified", fg="green")


def register(app: typer.Typer) -> None:
    app.add_typer(proposals_app, name="proposals")
    app.add_typer(audit_app, name="audit")
    app.command("pin")(pin)
    app.command("unpin")(unpin)
    app.command("rollback")(rollback)
    app.command("history")(history)
