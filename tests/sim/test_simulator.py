"""The simulation environment: deterministic streams, events at the right tick, outcome shares."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from flywheel.sim import (
    Environment,
    HumanReviewer,
    ModelUnavailable,
    OutcomeReporter,
    Scenario,
    SimRequest,
    TrafficGenerator,
    load_scenario,
    spec_mismatches,
    truth_label,
)
from flywheel.sim.vocabulary import (
    CATEGORY_TEMPLATES,
    CATEGORY_WORDS,
    CLOSINGS,
    FILLER_SENTENCES,
    LABEL_TEMPLATES,
    LABEL_WORDS,
    OPENINGS,
    REPORT_OPENINGS,
    REPORT_TOPICS,
    TIER_SENTENCES,
)
from flywheel.workflows.loading import ConfigError
from flywheel.workflows.spec import WorkflowSpec

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "configs" / "scenarios"
SHIPPED = ["stationary", "abrupt_drift", "gradual_drift", "new_model", "outage"]
ARMS = ["fast", "balanced", "strong", "frontier"]
N = 2000


@pytest.fixture(scope="module")
def stationary() -> Scenario:
    return load_scenario("stationary", SCENARIOS)


def _requests(scenario: Scenario, seed: int | None = None, n: int = N) -> list[SimRequest]:
    return list(TrafficGenerator(scenario, seed=seed, runs=n))


def _episode(scenario: Scenario, seed: int, n: int = N) -> list[tuple[int, object]]:
    """A small closed loop: respond (round-robin arm), review low confidence, report; the outcomes seen."""
    env = Environment(scenario, seed=seed)
    reporter = OutcomeReporter(env, scenario, seed=seed)
    reviewer = HumanReviewer(scenario, seed=seed)
    seen: list[tuple[int, object]] = []
    for req in TrafficGenerator(scenario, seed=seed, runs=n):
        arm = ["fast", "balanced", "strong"][req.tick % 3]
        resp = env.respond(arm, req.workflow, req.input, req.tick)
        human = None
        if resp.confidence < 0.5:
            human, _ = reviewer.review(req, resp.answer, resp.correct)
        reporter.observe(req.tick, f"run-{req.tick}", req, resp.correct, resp.score, human)
        seen += [(req.tick, e) for e in reporter.due(req.tick)]
    seen += [(n, e) for e in reporter.drain()]
    return seen


# -- scenarios load and validate ---------------------------------------------------


def test_every_shipped_scenario_loads() -> None:
    files = sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    assert set(SHIPPED) <= set(files)
    for name in files:
        scenario = load_scenario(name, SCENARIOS)
        assert scenario.name == name
        assert scenario.model_names == ARMS
        assert set(scenario.workflows) == {"ticket_triage", "report_generation"}
        env = Environment(scenario)
        for arm in ARMS:
            for cat in scenario.workflows["ticket_triage"].categories:
                assert 0 <= env.quality(arm, "ticket_triage", cat, 0) <= 1


def test_load_by_path_equals_load_by_name() -> None:
    assert load_scenario(SCENARIOS / "outage.yaml") == load_scenario("outage", SCENARIOS)


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _stationary_data() -> dict:
    return yaml.safe_load((SCENARIOS / "stationary.yaml").read_text())


def test_unknown_field_names_file_and_field(tmp_path: Path) -> None:
    data = _stationary_data()
    data["models"][1]["surprise"] = 1
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.path == str(path)
    assert str(path) in str(err.value)
    assert [f for f, _ in err.value.problems] == ["models.1.surprise"]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["models"][0]["quality"]["ticket_triage"].update(technical=1.5),
         "models.0.quality.ticket_triage.technical"),
        (lambda d: d["reporting"].update(never_share=-0.1), "reporting.never_share"),
        (lambda d: d["reporting"]["reviewer"].update(catch_probability=2), "reporting.reviewer.catch_probability"),
    ],
)
def test_bad_probability_names_file_and_field(tmp_path: Path, edit, field: str) -> None:
    data = _stationary_data()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert str(path) in str(err.value)
    assert field in [f for f, _ in err.value.problems]
    assert "less than or equal to 1" in str(err.value) or "greater than or equal to 0" in str(err.value)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: d["events"].append({"kind": "outage", "at_run": 5, "model": "nope"}), "unknown model 'nope'"),
        (lambda d: d["events"].append({"kind": "restore", "at_run": 5, "model": "fast"}), "not down"),
        (lambda d: d["events"].append({"kind": "add", "at_run": 5, "model": "fast"}), "already available"),
        (lambda d: d["phases"].append({"from_run": 0, "workflows": {"ticket_triage": 1}}), "strictly increasing"),
        (lambda d: d["phases"].append({"from_run": 9, "workflows": {"triage": 1}}), "unknown workflow 'triage'"),
        (lambda d: d["models"][0]["quality"]["ticket_triage"].pop("billing"), "no quality for categories"),
        (lambda d: d["events"].append(
            {"kind": "gradual_degrade", "at_run": 9, "until_run": 5, "model": "fast", "multiplier": 0.5}),
         "until_run"),
        (lambda d: d["events"].append(
            {"kind": "degrade", "at_run": 9, "model": "fast", "quality": {"ticket_triage": {"food": 0.5}}}),
         "unknown categories"),
    ],
)
def test_cross_field_checks(tmp_path: Path, edit, reason: str) -> None:
    data = _stationary_data()
    edit(data)
    with pytest.raises(ConfigError) as err:
        load_scenario(_write(tmp_path, data))
    assert reason in str(err.value)


def test_missing_scenario_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_scenario("no_such_scenario", tmp_path)
    assert str(tmp_path / "no_such_scenario.yaml") in str(err.value)


# -- determinism ---------------------------------------------------------------------


def test_same_seed_same_request_stream(stationary: Scenario) -> None:
    a, b = _requests(stationary, seed=11), _requests(stationary, seed=11)
    assert a == b
    assert len({r.key for r in a}) == N
    c = _requests(stationary, seed=12)
    assert sum(x.input != y.input for x, y in zip(a, c)) > 0.9 * N
    assert TrafficGenerator(stationary, seed=11).at(1234) == _requests(stationary, seed=11, n=1235)[-1]


def test_same_seed_same_responses(stationary: Scenario) -> None:
    reqs = _requests(stationary)
    env1, env2, env3 = Environment(stationary), Environment(stationary), Environment(stationary, seed=99)
    r1 = [env1.respond("balanced", r.workflow, r.input, r.tick) for r in reqs]
    r2 = [env2.respond("balanced", r.workflow, r.input, r.tick) for r in reqs]
    r3 = [env3.respond("balanced", r.workflow, r.input, r.tick) for r in reqs]
    assert r1 == r2
    assert sum(x.confidence != y.confidence for x, y in zip(r1, r3)) > 0.9 * N
    assert sum(x.correct != y.correct for x, y in zip(r1, r3)) > 0.05 * N


def test_same_seed_same_outcome_stream(stationary: Scenario) -> None:
    a, b = _episode(stationary, seed=5), _episode(stationary, seed=5)
    assert a == b
    assert len(a) > 0.8 * N
    c = _episode(stationary, seed=6)
    assert a != c


def test_streams_do_not_depend_on_the_process_hash_seed() -> None:
    code = (
        "import hashlib\n"
        "from flywheel.sim import *\n"
        f"s = load_scenario('abrupt_drift', {str(SCENARIOS)!r})\n"
        "env = Environment(s)\n"
        "h = hashlib.sha256()\n"
        "for r in TrafficGenerator(s, runs=300):\n"
        "    h.update(repr((r.input, env.respond('fast', r.workflow, r.input, r.tick))).encode())\n"
        "print(h.hexdigest())\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={"PYTHONHASHSEED": hs, "PATH": ""}, cwd=ROOT,
        ).stdout
        for hs in ("1", "2")
    }
    assert len(digests) == 1 and len(next(iter(digests))) == 65


# -- events take effect at the right tick ---------------------------------------------


def _correct_rate(env: Environment, arm: str, reqs: list[SimRequest], tick: int) -> float:
    return sum(env.respond(arm, r.workflow, r.input, tick).correct for r in reqs) / len(reqs)


def test_abrupt_drift_at_run_5000() -> None:
    scenario = load_scenario("abrupt_drift", SCENARIOS)
    env = Environment(scenario)
    q = env.quality
    assert q("strong", "ticket_triage", "technical", 4999) == pytest.approx(0.92)
    assert q("strong", "ticket_triage", "technical", 5000) == pytest.approx(0.55)
    assert q("strong", "ticket_triage", "technical", 19999) == pytest.approx(0.55)
    assert q("strong", "ticket_triage", "billing", 5000) == q("strong", "ticket_triage", "billing", 0)
    assert q("balanced", "ticket_triage", "technical", 5000) == q("balanced", "ticket_triage", "technical", 0)
    technical = [r for r in _requests(scenario, n=6000) if r.input.get("product") == "technical"]
    assert len(technical) > 1000
    assert _correct_rate(env, "strong", technical, 4999) == pytest.approx(0.92, abs=0.04)
    assert _correct_rate(env, "strong", technical, 5000) == pytest.approx(0.55, abs=0.05)


def test_gradual_drift_is_linear() -> None:
    scenario = load_scenario("gradual_drift", SCENARIOS)
    env = Environment(scenario)

    def q(t: int) -> float:
        return env.quality("strong", "ticket_triage", "technical", t)

    start, end = 0.92, 0.92 * 0.7
    assert q(0) == q(4000) == pytest.approx(start)
    assert q(12000) == q(19999) == pytest.approx(end)
    for t in (4001, 5000, 8000, 10500, 11999):
        assert q(t) == pytest.approx(start + (end - start) * (t - 4000) / 8000, abs=1e-12)
    assert q(8000) == pytest.approx((start + end) / 2)
    # out of scope: summaries do not drift; in scope: forecasts do
    assert env.quality("strong", "report_generation", "summary", 15000) == pytest.approx(0.92)
    assert env.quality("strong", "report_generation", "forecast", 15000) == pytest.approx(0.86 * 0.7)


def test_new_model_unavailable_until_added() -> None:
    scenario = load_scenario("new_model", SCENARIOS)
    env = Environment(scenario)
    req = _requests(scenario, n=1)[0]
    assert not env.available("frontier", 0) and not env.available("frontier", 5999)
    assert env.available("frontier", 6000) and env.available("frontier", 19999)
    with pytest.raises(ModelUnavailable) as err:
        env.respond("frontier", req.workflow, req.input, 5999)
    assert (err.value.model, err.value.tick) == ("frontier", 5999)
    resp = env.respond("frontier", req.workflow, req.input, 6000)
    assert 0 <= resp.confidence <= 1
    frontier, strong = scenario.model("frontier"), scenario.model("strong")
    assert frontier.price.output_per_1k < strong.price.output_per_1k
    for wf, cats in strong.quality.items():
        for cat, value in cats.items():
            assert frontier.quality[wf][cat] > value


def test_outage_between_3000_and_6000() -> None:
    scenario = load_scenario("outage", SCENARIOS)
    env = Environment(scenario)
    req = _requests(scenario, n=1)[0]
    assert [env.available("balanced", t) for t in (0, 2999, 3000, 4500, 5999, 6000)] == [
        True, True, False, False, False, True,
    ]
    with pytest.raises(ModelUnavailable):
        env.respond("balanced", req.workflow, req.input, 3000)
    env.respond("balanced", req.workflow, req.input, 2999)
    env.respond("balanced", req.workflow, req.input, 6000)
    assert env.available("strong", 4000) and env.available("fast", 4000)


# -- traffic follows the mix ------------------------------------------------------------


def test_categories_follow_the_mix(stationary: Scenario) -> None:
    reqs = _requests(stationary, n=6000)
    wf = Counter(r.workflow for r in reqs)
    assert wf["ticket_triage"] / len(reqs) == pytest.approx(0.7, abs=0.025)
    tickets = [r for r in reqs if r.workflow == "ticket_triage"]
    products = Counter(r.input["product"] for r in tickets)
    for cat, share in stationary.workflows["ticket_triage"].categories.items():
        assert products[cat] / len(tickets) == pytest.approx(share, abs=0.025)
    reports = [r for r in reqs if r.workflow == "report_generation"]
    types = Counter(r.input["report_type"] for r in reports)
    for cat, share in stationary.workflows["report_generation"].categories.items():
        assert types[cat] / len(reports) == pytest.approx(share, abs=0.035)
    tiers = Counter(r.input["customer_tier"] for r in tickets)
    assert tiers["free"] / len(tickets) == pytest.approx(0.6, abs=0.03)
    assert all(150 <= r.input["length_words"] <= 900 for r in reports)
    assert all(set(r.input) == {"request", "report_type", "audience", "length_words"} for r in reports)
    assert all(set(r.input) == {"text", "product", "customer_tier", "channel"} for r in tickets)


def test_phases_override_the_mix() -> None:
    scenario = load_scenario("outage", SCENARIOS)
    gen = TrafficGenerator(scenario)

    def technical_share(ticks: range) -> float:
        tickets = [r for r in map(gen.at, ticks) if r.workflow == "ticket_triage"]
        return sum(r.input["product"] == "technical" for r in tickets) / len(tickets)

    assert technical_share(range(0, 3000)) == pytest.approx(0.30, abs=0.03)
    assert technical_share(range(3000, 6000)) == pytest.approx(0.50, abs=0.03)
    assert technical_share(range(6000, 9000)) == pytest.approx(0.30, abs=0.03)


def test_prompt_words_carry_the_truth(stationary: Scenario) -> None:
    env = Environment(stationary)
    tickets = [r for r in _requests(stationary, n=5000) if r.workflow == "ticket_triage"]
    assert all(100 <= len(r.input["text"]) <= 600 for r in tickets)
    assert len({r.input["text"] for r in tickets}) == len(tickets)
    shipping = [env.truth("ticket_triage", r.input) for r in tickets if r.input["product"] == "shipping"]
    assert Counter(shipping)["delivery"] / len(shipping) == pytest.approx(0.80, abs=0.06)
    technical = [env.truth("ticket_triage", r.input) for r in tickets if r.input["product"] == "technical"]
    assert Counter(technical)["bug"] / len(technical) == pytest.approx(0.75, abs=0.05)
    # the category shows in the words too
    billing_words = set(CATEGORY_WORDS["billing"])
    billing = [r for r in tickets if r.input["product"] == "billing"]
    hits = sum(any(w.strip(".,?!") in billing_words for w in r.input["text"].lower().split()) for r in billing)
    assert hits == len(billing)


def test_label_words_are_disjoint_from_every_other_text() -> None:
    label_words = {w for words in LABEL_WORDS.values() for w in words}
    other = " ".join(
        [
            *(w for words in CATEGORY_WORDS.values() for w in words),
            *CATEGORY_TEMPLATES, *LABEL_TEMPLATES, *FILLER_SENTENCES, *REPORT_OPENINGS, *REPORT_TOPICS,
            *TIER_SENTENCES.values(), *(s for v in OPENINGS.values() for s in v),
            *(s for v in CLOSINGS.values() for s in v),
        ]
    ).lower()
    tokens = {t.strip(".,;:!?{}") for t in other.split()}
    assert not tokens & label_words
    assert truth_label("refund refund bug", ["refund", "bug"]) == "refund"


def test_truth_is_a_function_of_the_input(stationary: Scenario) -> None:
    env = Environment(stationary)
    for r in _requests(stationary, n=200):
        if r.workflow == "ticket_triage":
            assert env.truth(r.workflow, dict(r.input)) == env.truth(r.workflow, r.input)
            assert env.truth(r.workflow, r.input) in stationary.workflows["ticket_triage"].labels
        else:
            assert env.truth(r.workflow, r.input) is None


# -- responses --------------------------------------------------------------------------


def test_responses_follow_quality_and_prices(stationary: Scenario) -> None:
    env = Environment(stationary)
    reqs = _requests(stationary, n=8000)
    by_cat: dict[tuple[str, str], list[bool]] = {}
    for r in reqs:
        for arm in ("fast", "strong"):
            resp = env.respond(arm, r.workflow, r.input, r.tick)
            cat = env.category_of(r.workflow, r.input)
            by_cat.setdefault((arm, cat), []).append(resp.correct)
            prompt = r.input["text" if r.workflow == "ticket_triage" else "request"]
            assert resp.tokens_in == max(1, len(prompt) // 4)
            price = stationary.model(arm).price
            assert resp.cost == pytest.approx(
                (resp.tokens_in * price.input_per_1k + resp.tokens_out * price.output_per_1k) / 1000
            )
            assert resp.latency_s > 0 and 0 <= resp.confidence <= 1
            if r.workflow == "ticket_triage":
                assert resp.correct == (resp.answer["label"] == env.truth(r.workflow, r.input))
                assert resp.score == float(resp.correct)
            else:
                assert isinstance(resp.answer["report"], str) and 0 <= resp.score <= 1
    rate = {k: sum(v) / len(v) for k, v in by_cat.items()}
    assert rate[("fast", "technical")] == pytest.approx(0.58, abs=0.05)
    assert rate[("strong", "technical")] - rate[("fast", "technical")] > 0.25
    assert abs(rate[("strong", "shipping")] - rate[("fast", "shipping")]) < 0.06
    assert rate[("strong", "forecast")] - rate[("fast", "forecast")] > 0.25
    assert stationary.model("strong").price.output_per_1k / stationary.model("fast").price.output_per_1k == pytest.approx(10)


def test_confidence_is_informative_by_sharpness(stationary: Scenario) -> None:
    env = Environment(stationary)
    reqs = _requests(stationary, n=4000)

    def separation(arm: str) -> float:
        rs = [env.respond(arm, r.workflow, r.input, r.tick) for r in reqs]
        right = [x.confidence for x in rs if x.correct]
        wrong = [x.confidence for x in rs if not x.correct]
        return sum(right) / len(right) - sum(wrong) / len(wrong)

    fast, strong = separation("fast"), separation("strong")
    assert fast > 0.1
    assert strong > fast + 0.05


def test_report_quality_is_higher_when_correct(stationary: Scenario) -> None:
    env = Environment(stationary)
    reports = [r for r in _requests(stationary, n=3000) if r.workflow == "report_generation"]
    rs = [env.respond("balanced", r.workflow, r.input, r.tick) for r in reports]
    assert min(x.score for x in rs if x.correct) > max(x.score for x in rs if not x.correct)
    long = [x.tokens_out for r, x in zip(reports, rs) if r.input["length_words"] > 700]
    short = [x.tokens_out for r, x in zip(reports, rs) if r.input["length_words"] < 300]
    assert min(long) > max(short)


# -- outcomes and the human reviewer -----------------------------------------------------


def test_reporter_shares_match_the_scenario(stationary: Scenario) -> None:
    env = Environment(stationary)
    reporter = OutcomeReporter(env, stationary, seed=3)
    cfg = stationary.reporting
    n = 6000
    plans = [
        reporter.observe(r.tick, f"run-{r.tick}", r, response_correct=r.tick % 2 == 0)
        for r in TrafficGenerator(stationary, seed=3, runs=n)
    ]
    never = sum(not p for p in plans)
    late = [p[0][0] - tick for tick, p in enumerate(plans) if p and p[0][0] > tick]
    twice = [p for p in plans if len(p) == 2]
    assert never / n == pytest.approx(cfg.never_share, abs=0.02)
    assert len(late) / n == pytest.approx(cfg.late_share, abs=0.025)
    assert len(twice) / (n - never) == pytest.approx(cfg.twice_share, abs=0.015)
    assert cfg.delay_min_runs <= min(late) and max(late) <= cfg.delay_max_runs
    for (due1, first), (due2, second) in twice:
        assert first.event_id == second.event_id and first == second and first is not second
        assert due1 <= due2 <= due1 + cfg.duplicate_delay_max_runs
    # due() hands each delivery out once, at or after its tick, then drain() the rest
    delivered = []
    for tick in range(0, n, 50):
        got = reporter.due(tick)
        assert all(int(e.run_id.split("-")[1]) <= tick for e in got)
        delivered += got
    delivered += reporter.drain()
    assert reporter.pending == 0 and reporter.due(10**9) == []
    assert len(delivered) == sum(len(p) for p in plans)
    assert len({e.event_id for e in delivered}) == n - never
    assert reporter.counts == {"observed": n, "never": never, "late": len(late), "twice": len(twice)}


def test_outcome_fields(stationary: Scenario) -> None:
    env = Environment(stationary)
    reporter = OutcomeReporter(env, stationary)
    reqs = _requests(stationary, n=400)
    qualities = {}
    for r in reqs:
        plan = reporter.observe(r.tick, f"r{r.tick}", r, response_correct=r.tick % 2 == 0, human="edit")
        for _, e in plan:
            assert e.success == (r.tick % 2 == 0) and e.human_override and e.run_id == f"r{r.tick}"
            qualities[(r.workflow, e.success)] = qualities.get((r.workflow, e.success), []) + [e.quality]
    assert set(qualities[("ticket_triage", True)]) == {1.0}
    assert set(qualities[("ticket_triage", False)]) == {0.0}
    assert min(qualities[("report_generation", True)]) > max(qualities[("report_generation", False)])
    plan = reporter.observe(0, "x", reqs[0], True, quality=0.42, human="approve")
    assert plan and all(e.quality == 0.42 and not e.human_override for _, e in plan)


def test_reviewer_catches_with_the_configured_probability(stationary: Scenario) -> None:
    env = Environment(stationary)
    reviewer = HumanReviewer(stationary, seed=8)
    cfg = stationary.reporting.reviewer
    tickets = [r for r in _requests(stationary, n=12000) if r.workflow == "ticket_triage"]
    wrong, right = Counter(), Counter()
    for r in tickets:
        resp = env.respond("fast", r.workflow, r.input, r.tick)
        decision, edited = reviewer.review(r, resp.answer, resp.correct)
        assert reviewer.review(r, resp.answer, resp.correct) == (decision, edited)
        (right if resp.correct else wrong)[decision] += 1
        if decision == "edit":
            assert edited == {"label": env.truth(r.workflow, r.input)}
        else:
            assert edited is None
    n_wrong, n_right = sum(wrong.values()), sum(right.values())
    assert n_wrong > 1000
    caught = (wrong["reject"] + wrong["edit"]) / n_wrong
    assert caught == pytest.approx(cfg.catch_probability, abs=0.03)
    assert wrong["edit"] / (wrong["reject"] + wrong["edit"]) == pytest.approx(cfg.edit_share, abs=0.05)
    assert right["reject"] / n_right == pytest.approx(cfg.false_alarm_probability, abs=0.015)
    assert right["edit"] == 0



def _triage_spec(products: list[str]) -> WorkflowSpec:
    return WorkflowSpec.model_validate(
        {
            "name": "ticket_triage",
            "prompt_field": "text",
            "inputs": [
                {"name": "text", "type": "text"},
                {"name": "product", "type": "category", "values": products},
                {"name": "customer_tier", "type": "category", "values": ["free", "pro", "enterprise"]},
                {"name": "channel", "type": "category", "values": ["email", "chat", "phone"]},
            ],
            "routing": {"weights": dict.fromkeys(ARMS, 0.0)},
            "steps": [
                {"id": "route", "kind": "route", "arms": ARMS},
                {"id": "agent", "kind": "agent"},
                {"id": "done", "kind": "finish"},
            ],
        }
    )


def test_spec_mismatches(stationary: Scenario) -> None:
    assert spec_mismatches(stationary, _triage_spec(["billing", "technical", "account", "shipping"])) == []
    problems = spec_mismatches(stationary, _triage_spec(["billing", "technical", "account"]))
    assert len(problems) == 1 and "'shipping'" in problems[0] and "product" in problems[0]
