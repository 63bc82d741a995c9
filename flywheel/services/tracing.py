"""W3C Trace Context (https://www.w3.org/TR/trace-context/) for runs: the `traceparent`
header a caller sends is parsed, the run joins its trace (or starts one), and the agent
call carries a child `traceparent` whose parent is this service's span for the run."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

TRACEPARENT = "traceparent"
_HEADER = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One span's place in a trace: the trace id, the span id and the sampled flag."""

    trace_id: str
    span_id: str
    flags: str = "01"

    @property
    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> "TraceContext":
        """A new span of the same trace, whose parent is this one."""
        return TraceContext(self.trace_id, secrets.token_hex(8), self.flags)


def parse_traceparent(value: str | None) -> TraceContext | None:
    """The context of a valid `traceparent` header; None when absent or invalid (the spec says
    to ignore an invalid one and start a new trace)."""
    if not value:
        return None
    match = _HEADER.match(value.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return TraceContext(trace_id, span_id, flags)


def run_span(incoming: str | None) -> TraceContext:
    """The span of a run: a child of the caller's span, or the root of a new trace."""
    parent = parse_traceparent(incoming)
    if parent is None:
        return TraceContext(secrets.token_hex(16), secrets.token_hex(8))
    return parent.child()
