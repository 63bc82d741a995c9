"""The simulated world Flywheel is stress-tested in: agents, traffic, outcomes.

On a laptop the LLM agents are simulated. A `Scenario` (configs/scenarios/*.yaml)
describes the world; an `Environment` gives its truth at any run (tick): each
model's quality and availability and its response to an input; a
`TrafficGenerator` yields the requests; an `OutcomeReporter` returns outcomes
(late, never, twice) and a `HumanReviewer` plays the human step. Everything is
deterministic: the same seed gives the same streams, in any process.
"""

from .environment import Environment, ModelUnavailable, QualitySchedule, SimResponse
from .events import (
    AddEvent,
    DegradeEvent,
    Event,
    GradualDegradeEvent,
    OutageEvent,
    RecoverEvent,
    RestoreEvent,
)
from .scenario import (
    Latency,
    ModelProfile,
    NumberRange,
    OutcomeReporting,
    Price,
    Reviewer,
    Scenario,
    TrafficPhase,
    WorkflowTraffic,
    load_scenario,
    spec_mismatches,
)
from .seeding import stable_seed
from .traffic import HumanReviewer, OutcomeReporter, SimRequest, TrafficGenerator
from .vocabulary import truth_label

__all__ = [
    "AddEvent",
    "DegradeEvent",
    "Environment",
    "Event",
    "GradualDegradeEvent",
    "HumanReviewer",
    "Latency",
    "ModelProfile",
    "ModelUnavailable",
    "NumberRange",
    "OutageEvent",
    "OutcomeReporter",
    "OutcomeReporting",
    "Price",
    "QualitySchedule",
    "RecoverEvent",
    "RestoreEvent",
    "Reviewer",
    "Scenario",
    "SimRequest",
    "SimResponse",
    "TrafficGenerator",
    "TrafficPhase",
    "WorkflowTraffic",
    "load_scenario",
    "spec_mismatches",
    "stable_seed",
    "truth_label",
]
