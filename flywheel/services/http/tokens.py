"""HTTP endpoints of token administration (admin only): create a token, list tokens.

A token's secret is in the response to its creation and nowhere else; the list
shows names, roles and who made them. Revoking is `flywheel tokens revoke`.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

from flywheel.services.http.auth import Principal, require
from flywheel.services.http.errors import AUTHED, error, responses
from flywheel.ledger.tokens import TokenError

Role = Literal["service", "mlops", "operator", "admin"]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="service: runs and outcomes; mlops: review; operator: pin, unpin, rollback; admin: all.")
    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$",
        description="Unique name of the token (default: <role>-<8 hex>); the actor in the audit trail.",
    )
    reason: str = Field(default="", max_length=500, description="Why it is made: kept in the audit trail.")


class TokenCreated(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The token's name.")
    role: Role = Field(description="The token's role.")
    token: str = Field(description="The secret, shown this once: send it as `Authorization: Bearer <token>`.")


class TokenOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="The token's name.")
    role: Role = Field(description="The token's role.")
    created_at: float = Field(description="Unix time it was made.")
    created_by: str = Field(description="Who made it (a token's name, cli:<user> or bootstrap).")
    revoked_at: float | None = Field(description="Unix time it was revoked; None while it works.")


def tokens_router(route_class: type[APIRoute] = APIRoute) -> APIRouter:
    router = APIRouter(prefix="/v1/tokens", tags=["tokens"], route_class=route_class)

    @router.post("", status_code=201, response_model=TokenCreated, responses=responses(*AUTHED, 409, 413))
    async def create_token(request: Request, body: TokenCreate, who: Principal = Depends(require("admin"))):
        """Make a token with a role; its secret is in this response only."""
        ledger = (await request.app.state.holder.get()).ledger
        try:
            info, secret = await asyncio.to_thread(
                ledger.create_token, body.role, name=body.name, created_by=who.name, reason=body.reason
            )
        except TokenError as e:
            return error(409, ["body", e.field], str(e), "conflict")
        return TokenCreated(name=info.name, role=info.role, token=secret)  # type: ignore[arg-type]

    @router.get("", response_model=list[TokenOut], responses=responses(*AUTHED))
    async def list_tokens(request: Request, who: Principal = Depends(require("admin"))):
        """Every token, revoked ones included; never a secret."""
        ledger = (await request.app.state.holder.get()).ledger
        return [
            TokenOut(name=t.name, role=t.role, created_at=t.created_at,  # type: ignore[arg-type]
                     created_by=t.created_by, revoked_at=t.revoked_at)
            for t in await asyncio.to_thread(ledger.list_tokens)
        ]

    return router
