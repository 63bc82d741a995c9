"""The ``limits:`` section of the app settings: what one client may send, and how often.

Rates are strings in the `limits` library's notation (``"100 per 2 seconds"``, ``"20/minute"``),
checked when the settings load. Counters live in memory, per ingress replica: with N replicas a
client may get up to N times a rate (see the README).
"""

from __future__ import annotations

from limits import parse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from flywheel.learners.examples import CEILINGS
from flywheel.ledger.records import OutcomeLimits
from flywheel.workflows.run_limits import RunLimits


class LimitSettings(BaseModel):
    """Request sizes and rates the HTTP API accepts (each replica counts on its own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, description="Largest request body in bytes; a larger one is 413."
    )
    max_json_depth: int = Field(
        default=32, ge=2, le=200, description="Deepest nesting of arrays and objects in a JSON body; deeper is 422."
    )
    runs: RunLimits = Field(
        default_factory=RunLimits,
        description="Size limits of a run's input and metadata (a workflow's `limits:` may override them).",
    )
    max_outcome_batch: int = Field(default=1000, ge=1, description="Most events in one POST /v1/outcomes.")
    max_reason_chars: int = Field(
        default=2000, ge=1, description="Longest reason of a governance change (approve, reject, pin, ...)."
    )
    max_comment_chars: int = Field(default=4000, ge=0, description="Longest comment of a resume.")
    per_token: str = Field(
        default="100 per 2 seconds",
        description="Requests per token, a moving window (100 per 2 s: 50/s sustained, bursts of 100); over it, 429.",
    )
    failed_auth_per_client: str = Field(
        default="20 per minute",
        description=(
            "Failed authentications per client address; over it, every request from that address "
            "that needs a token is 429 until the window frees up."
        ),
    )

    @field_validator("per_token", "failed_auth_per_client")
    @classmethod
    def _rate(cls, value: str) -> str:
        try:
            parse(value)
        except ValueError:
            raise ValueError(f"not a rate like '100 per 2 seconds': {value!r}") from None
        return value


_LIMITS = OutcomeLimits()  # the defaults


class OutcomeLimitSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    """The most an outcome may report. A larger figure is refused (HTTP 422 naming the field),
    never stored: one absurd cost would make its reward -inf and poison the learners."""

    max_cost_usd: float = Field(
        default=_LIMITS.max_cost_usd,
        gt=0,
        le=CEILINGS.cost_usd,
        description=f"Largest cost of one run in USD (default {_LIMITS.max_cost_usd:g}; "
        f"at most the learners' own ceiling, {CEILINGS.cost_usd:g}).",
    )
    max_latency_s: float = Field(
        default=_LIMITS.max_latency_s,
        gt=0,
        le=CEILINGS.latency_s,
        description=f"Largest latency of one run in seconds (default {_LIMITS.max_latency_s:g}: "
        f"one day; at most the learners' own ceiling, {CEILINGS.latency_s:g}).",
    )

    def limits(self) -> OutcomeLimits:
        """The ledger's plain form of these limits."""
        return OutcomeLimits(max_cost_usd=self.max_cost_usd, max_latency_s=self.max_latency_s)
