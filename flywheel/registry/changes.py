"""What a governed change returns (Outcome), and how one fails (GovernanceError and its kinds)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["GovernanceError", "NotFound", "Outcome", "Refused"]


class GovernanceError(Exception):
    """An operation that cannot be done as asked.

    `status` is its HTTP status; `about` names the operation's argument it concerns
    (`workflow`, `number`, `to`); `loc` is where that argument was in the request
    (e.g. ("path", "version")), set by the edge that knows the request (see `at`).
    """

    status = 409

    def __init__(self, message: str, *, about: str = "workflow", loc: tuple[str, ...] = ()):
        super().__init__(message)
        self.about = about
        self.loc = loc

    def at(self, loc: tuple[str, ...]) -> "GovernanceError":
        """This error, placed at the request field `loc`."""
        self.loc = tuple(loc)
        return self


class NotFound(GovernanceError):
    status = 404


class Refused(GovernanceError):
    status = 409


@dataclass(slots=True)
class Outcome:
    """What an operation did: the champion before and after, and the version it acted on."""

    workflow: str
    action: str
    number: int | None
    champion_before: int | None
    champion_after: int | None
    status: str = ""
    reasons: list[str] = field(default_factory=list)

    @property
    def champion_changed(self) -> bool:
        return self.champion_before != self.champion_after
