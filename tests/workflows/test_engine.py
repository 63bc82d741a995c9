"""The step engine: route, agent, gate, human checkpoint, finish, failures, resume."""

import asyncio

import pytest

from flywheel.learners.softmax import SoftmaxPolicy
from flywheel.workflows.agent_io import AgentError, AgentRequest, AgentResult
from flywheel.workflows.engine import Engine, HumanDecision, LiveConfig
from flywheel.workflows.loading import load_model
from flywheel.workflows.spec import WorkflowSpec

INPUT = {"text": "I was charged twice", "product": "billing", "customer_tier": "pro", "channel": "email"}


class ScriptedAgents:
    """Answers with a fixed confidence per agent; records what it was asked."""

    def __init__(self, confidence: dict[str, float], down: set[str] = frozenset()):
        self.confidence = confidence
        self.down = down
        self.calls: list[tuple[str, AgentRequest]] = []

    async def __call__(self, agent: str, request: AgentRequest) -> AgentResult:
        self.calls.append((agent, request))
        if agent in self.down:
            raise AgentError(f"{agent} is down")
        return AgentResult(
            answer={"label": f"from-{agent}"},
            confidence=self.confidence[agent],
            tokens_in=10,
            tokens_out=2,
            cost=0.001,
            latency_s=0.2,
            model=agent,
        )


@pytest.fixture
def spec():
    return load_model("configs/workflows/ticket_triage.yaml", WorkflowSpec)


def live(weights, threshold=0.7, version="v-test"):
    return LiveConfig(
        version=version,
        policy=SoftmaxPolicy(weights, temperature=0.01, seed=1),
        thresholds={"confidence": threshold},
    )


def only(arm):
    return {a: (10.0 if a == arm else 0.0) for a in ["fast", "balanced", "strong", "frontier"]}


def test_confident_answer_completes_with_decision_logged(spec):
    agents = ScriptedAgents({"strong": 0.9})
    run = asyncio.run(Engine(spec, agents).start("r1", INPUT, live(only("strong")), {"trace": "t"}))
    assert run.status == "completed"
    assert run.answer == {"label": "from-strong"}
    assert [s.step_id for s in run.steps] == ["route", "classify", "confidence", "file"]
    assert run.decision.arm == "strong" and run.decision.config_version == "v-test"
    assert run.decision.propensity == pytest.approx(1.0)
    assert set(run.decision.scores) == {"fast", "balanced", "strong", "frontier"}
    assert run.decision.features["product"] == "billing"
    assert run.decision.features["prompt"] == INPUT["text"]
    assert agents.calls[0][1].metadata == {"trace": "t"}
    assert run.steps[2].output == {"confidence": 0.9, "threshold": 0.7, "passed": True}


def test_low_confidence_waits_for_a_human_then_resumes(spec):
    engine = Engine(spec, ScriptedAgents({"fast": 0.4}))
    run = asyncio.run(engine.start("r2", INPUT, live(only("fast"))))
    assert run.status == "waiting" and run.waiting_step == "review"
    assert run.steps[-1].status == "waiting"
    edited = asyncio.run(
        engine.resume(run, HumanDecision("edit", "ana", answer={"label": "refund"}))
    )
    assert edited.status == "completed"
    assert edited.answer == {"label": "refund"}
    assert [s.step_id for s in edited.steps] == ["review", "file"]
    assert edited.steps[0].seq == len(run.steps)  # continues the run's step numbering


def test_reject_ends_the_run(spec):
    engine = Engine(spec, ScriptedAgents({"fast": 0.1}))
    run = asyncio.run(engine.start("r3", INPUT, live(only("fast"))))
    rejected = asyncio.run(engine.resume(run, HumanDecision("reject", "bo")))
    assert rejected.status == "rejected"
    with pytest.raises(ValueError, match="not waiting"):
        asyncio.run(engine.resume(rejected, HumanDecision("approve", "bo")))


def test_threshold_comes_from_the_live_config(spec):
    engine = Engine(spec, ScriptedAgents({"fast": 0.5}))
    assert asyncio.run(engine.start("a", INPUT, live(only("fast"), threshold=0.6))).status == "waiting"
    assert asyncio.run(engine.start("b", INPUT, live(only("fast"), threshold=0.4))).status == "completed"


def test_agent_failure_fails_the_run_and_records_why(spec):
    run = asyncio.run(Engine(spec, ScriptedAgents({}, down={"fast"})).start("r4", INPUT, live(only("fast"))))
    assert run.status == "failed"
    assert run.steps[-1].status == "failed" and "fast is down" in run.steps[-1].output["error"]
    assert run.decision.arm == "fast"


def test_same_run_id_same_choice(spec):
    agents = ScriptedAgents({a: 0.9 for a in ["fast", "balanced", "strong", "frontier"]})
    cfg = LiveConfig("v", SoftmaxPolicy({"fast": 0, "balanced": 0, "strong": 0, "frontier": 0}, seed=3), {})
    engine = Engine(spec, agents)
    first = [asyncio.run(engine.start(f"run-{i}", INPUT, cfg)).decision.arm for i in range(50)]
    again = [asyncio.run(engine.start(f"run-{i}", INPUT, cfg)).decision.arm for i in range(50)]
    assert first == again
    assert len(set(first)) == 4  # a uniform policy does use every arm


def test_a_gate_after_a_human_step_cannot_run_which_is_why_specs_refuse_it(spec):
    """Built past validation, a gate after the human step stops the resumed run."""
    route, classify, gate, review, finish = spec.steps
    steps = [route, classify, review.model_copy(update={"next": gate.id}),
             gate.model_copy(update={"on_fail": finish.id}), finish]
    unchecked = WorkflowSpec.model_construct(**{**dict(spec), "steps": steps})
    with pytest.raises(ValueError, match="step 'confidence' follows human step 'review'"):
        WorkflowSpec.model_validate(unchecked.model_dump())
    engine = Engine(unchecked, ScriptedAgents({"fast": 0.4}))
    run = asyncio.run(engine.start("r-unrunnable", INPUT, live(only("fast"))))
    assert run.status == "waiting" and run.waiting_step == "review"
    with pytest.raises(RuntimeError, match="step 'confidence': a gate step needs a live config"):
        asyncio.run(engine.resume(run, HumanDecision("approve", "ana")))
