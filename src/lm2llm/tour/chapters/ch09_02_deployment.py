"""Chapter 9.2, deployment: a model behind an OpenAI-compatible HTTP API, measured as its users meet it.

The chapter starts `lm2llm serve`'s app (uvicorn, continuous batching) on 127.0.0.1 for a small run built
from the bundled corpora, then sends completion requests from 1, 4 and 8 concurrent clients over real
HTTP and records throughput (completion tokens per second) and latency (p50, p99). The same load against
the same server with batching switched off (one sequence per step) shows what batching contributes.
Every socket connection the process opens while measuring is recorded (a Python audit hook), which is
how "the data stays on this machine" is measured rather than asserted.
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from lm2llm.data import load_documents
from lm2llm.serve.app import ServedModel, ServerThread, create_app
from lm2llm.serve.demo import save_demo_run
from lm2llm.serve.hosts import is_loopback
from lm2llm.serve.loadgen import LoadResult, latency_ratio_interval, run_load
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Sample,
    T,
    Table,
    compare_intervals,
    demonstration,
)
from lm2llm.tour.plots import plt

CLIENTS = (1, 4, 8)
MODEL = {"quick": dict(context_length=256, n_layer=4, d_model=128, n_head=4),
         "full": dict(context_length=256, n_layer=6, d_model=192, n_head=6)}

# --- where the process connects: a Python audit hook, installed once, recording only while asked -------

_connections: list | None = None
_hooked = False


def _audit(event: str, args: tuple) -> None:
    if event == "socket.connect" and _connections is not None:
        address = args[1]
        _connections.append(address[0] if isinstance(address, tuple) else str(address))


@contextmanager
def recorded_connections():
    """Collect the host of every socket.connect made by this process inside the block."""
    global _connections, _hooked
    if not _hooked:
        sys.addaudithook(_audit)
        _hooked = True
    _connections = []
    try:
        yield _connections
    finally:
        _connections = None


# --- the measurement ---------------------------------------------------------------------------------

@dataclass
class Point:
    """One load level against one server: what the clients saw, and how full the server's batches were."""

    load: LoadResult
    mean_batch: float
    bound: str  # the address the server listened on


def measure(served: ServedModel, prompts: list[str], clients: int, per_client: int, max_tokens: int) -> Point:
    with ServerThread(create_app(served)) as server:
        def body(i: int) -> dict:
            return {"model": served.model_id, "prompt": prompts[i % len(prompts)], "max_tokens": max_tokens,
                    "temperature": 1.0, "seed": i}

        run_load(server.url, body, clients=1, requests=1)  # warm-up: first-call allocations
        before = (served.scheduler.stats.steps, served.scheduler.stats.rows_stepped)
        result = run_load(server.url, body, clients=clients, requests=clients * per_client)
        steps = served.scheduler.stats.steps - before[0]
        mean_batch = (served.scheduler.stats.rows_stepped - before[1]) / steps if steps else 0.0
        return Point(result, mean_batch, server.host)


def run(ctx: ChapterContext) -> ChapterResult:
    quick = ctx.quick
    korean, english = load_documents("korean-law"), load_documents("python-docs", limit=30 if quick else 200)
    prompts = [line.strip()[:40] for doc in korean + english for line in doc.splitlines() if len(line.strip()) > 20][:64]
    per_client, max_tokens = (3, 24) if quick else (6, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `lm2llm serve` runs: a decode step is too small to share between cores
    try:
        with tempfile.TemporaryDirectory() as tmp, recorded_connections() as connections:
            run_dir = save_demo_run(Path(tmp) / "served", korean + english, vocab_size=512,
                                    **MODEL["quick" if quick else "full"])
            results: dict[str, dict[int, Point]] = {"batched": {}, "one at a time": {}}
            total = 2 * len(CLIENTS)
            for mode, max_batch in (("batched", 16), ("one at a time", 1)):
                served = ServedModel.from_run(run_dir, max_batch=max_batch)
                for clients in CLIENTS:
                    results[mode][clients] = measure(served, prompts, clients, per_client, max_tokens)
                    ctx.progress(sum(map(len, results.values())), total)
            answer = sample_answer(ServedModel.from_run(run_dir), prompts[0])
    finally:
        torch.set_num_threads(threads)

    batched, serial = results["batched"], results["one at a time"]
    rows = [[mode, c, r.load.requests, f"{r.load.tokens_per_second:.0f}", f"{r.load.latency(0.5):.3f}", f"{r.load.latency(0.99):.3f}",
             f"{r.mean_batch:.1f}", r.load.server_errors] for mode, by in results.items() for c, r in by.items()]
    table = Table(T("Completion requests over HTTP on 127.0.0.1 (tokens/s counts completion tokens)",
                    "127.0.0.1에서 HTTP로 보낸 완성 요청 (tokens/s는 생성된 토큰 기준)"),
                  ["server", "clients", "requests", "tokens/s", "p50 latency (s)", "p99 latency (s)",
                   "mean rows per step", "5xx"], rows)

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    for mode, by in results.items():
        left.plot(CLIENTS, [by[c].load.tokens_per_second for c in CLIENTS], marker="o", label=mode)
        right.plot(CLIENTS, [by[c].load.latency(0.5) for c in CLIENTS], marker="o", label=f"{mode} p50")
        right.plot(CLIENTS, [by[c].load.latency(0.99) for c in CLIENTS], marker="x", linestyle="--", label=f"{mode} p99")
    left.set_xlabel("concurrent clients")
    left.set_ylabel("completion tokens / s")
    right.set_xlabel("concurrent clients")
    right.set_ylabel("latency per request (s)")
    left.legend()
    right.legend(fontsize=7)
    figure = ctx.save_figure(fig, "throughput_latency", T("Throughput and latency against concurrent clients",
                                                         "동시 접속 수에 따른 처리량과 지연 시간"))

    gain = batched[8].load.tokens_per_second / batched[1].load.tokens_per_second
    serial_gain = serial[8].load.tokens_per_second / serial[1].load.tokens_per_second
    over_serial = batched[8].load.tokens_per_second / serial[8].load.tokens_per_second
    latency_growth = batched[8].load.latency(0.5) / batched[1].load.latency(0.5)
    # decided on the interval, not the two ratios' order: comparing it with the throughput gain flipped between
    # idle runs of the same code (3.1× against 3.1×, then 2.6× against 3.4×)
    growth_low, growth_high = latency_ratio_interval(batched[1].load, batched[8].load)
    errors = sum(r.load.server_errors for by in results.values() for r in by.values())
    hosts = sorted(set(connections))
    peers = sorted(set().union(*(r.load.peers for by in results.values() for r in by.values())))
    bound = sorted({r.bound for by in results.values() for r in by.values()})
    local = bool(connections) and all(is_loopback(h) for h in [*hosts, *peers, *bound])
    claims = [
        Claim(T("Serving many users at once raises throughput: a batched decode step costs little more than a "
                "single one, so concurrent requests share it.",
                "여러 사용자를 동시에 처리하면 처리량이 오른다: 배치로 묶은 디코딩 한 스텝의 비용은 한 줄짜리와 "
                "거의 같아서, 동시에 온 요청들이 그 스텝을 나눠 쓴다."),
              T(f"8 clients: {batched[8].load.tokens_per_second:.0f} tokens/s vs 1 client: "
                f"{batched[1].load.tokens_per_second:.0f} ({gain:.1f}×; mean {batched[8].mean_batch:.1f} rows per step)",
                f"클라이언트 8개: 초당 {batched[8].load.tokens_per_second:.0f} 토큰, 1개: "
                f"{batched[1].load.tokens_per_second:.0f} ({gain:.1f}배; 스텝당 평균 {batched[8].mean_batch:.1f}줄)"),
              gain >= 2.0),
        Claim(T("It is the batching that does it: under the same 8 clients, the same server decoding one sequence "
                "at a time delivers far less (it only overlaps one request's decoding with the others' HTTP).",
                "그 이득은 배칭에서 나온다: 같은 8개 클라이언트를 받아도 한 번에 한 시퀀스만 디코딩하는 같은 서버는 "
                "훨씬 적게 처리한다(한 요청의 디코딩과 다른 요청의 HTTP 처리를 겹칠 뿐이다)."),
              T(f"one at a time: {serial_gain:.1f}× from 1 to 8 clients; at 8 clients batching gives "
                f"{over_serial:.1f}× its throughput",
                f"한 번에 하나: 1→8 클라이언트에서 {serial_gain:.1f}배; 8 클라이언트에서 배칭은 그 처리량의 "
                f"{over_serial:.1f}배"),
              over_serial >= 1.5),
        Claim(T("The price of sharing is latency: each request waits for steps that also serve others.",
                "공유의 대가는 지연 시간이다: 각 요청은 다른 요청도 함께 처리하는 스텝을 기다린다."),
              T(f"p50 latency {batched[1].load.latency(0.5):.3f}s with 1 client, {batched[8].load.latency(0.5):.3f}s with 8 "
                f"({latency_growth:.1f}×, 95 % bootstrap interval {growth_low:.1f}–{growth_high:.1f}×; no change would be "
                f"1×), while throughput grew {gain:.1f}×; holds when the interval lies above 1",
                f"p50 지연 시간: 클라이언트 1개 {batched[1].load.latency(0.5):.3f}초, 8개 {batched[8].load.latency(0.5):.3f}초 "
                f"({latency_growth:.1f}배, 95 % 부트스트랩 구간 {growth_low:.1f}–{growth_high:.1f}배; 변화가 없으면 1배), "
                f"처리량은 {gain:.1f}배; 구간이 1보다 위면 성립"),
              compare_intervals((growth_low, growth_high), (1.0, 1.0)), chance=1.0,
              interval=(growth_low, growth_high)),  # chance: the ratio with no change
        demonstration(T("Served on premise, the data stays on the machine: the server listens on loopback and every "
                "connection made while serving stayed on this host.",
                "온프레미스로 서빙하면 데이터가 기계 밖으로 나가지 않는다: 서버는 루프백에서만 듣고, 서빙하는 동안 "
                "맺은 모든 연결이 이 호스트 안에 머물렀다."),
              T(f"bound to {', '.join(bound)}; {len(connections)} connections made, to {', '.join(hosts)}; "
                f"{sum(r.load.requests for by in results.values() for r in by.values())} answers, {errors} server errors",
                f"바인드 주소 {', '.join(bound)}; 연결 {len(connections)}개, 대상 {', '.join(hosts)}; "
                f"응답 {sum(r.load.requests for by in results.values() for r in by.values())}개, 서버 오류 {errors}개"),
              local and errors == 0),
    ]
    summary = T(
        f"A {MODEL['quick' if quick else 'full']['n_layer']}-layer model served over HTTP with continuous batching "
        f"reached {batched[8].load.tokens_per_second:.0f} tokens/s for 8 clients, {gain:.1f}× one client's, at "
        f"{latency_growth:.1f}× the median latency; all traffic stayed on 127.0.0.1. Timings are from a shared "
        "machine and vary from run to run.",
        f"{MODEL['quick' if quick else 'full']['n_layer']}층 모델을 연속 배칭으로 HTTP 서빙하니 클라이언트 8개에서 "
        f"초당 {batched[8].load.tokens_per_second:.0f} 토큰, 1개일 때의 {gain:.1f}배였고 중앙 지연 시간은 "
        f"{latency_growth:.1f}배였다. 모든 통신은 127.0.0.1 안에서 이뤄졌다. 공유 기계에서 잰 시간이라 실행마다 다르다.")
    metrics = {mode: {str(c): r.load.summary() | {"mean_batch": r.mean_batch} for c, r in by.items()}
               for mode, by in results.items()}
    metrics["connections"] = {"count": len(connections), "hosts": hosts, "bound": bound}
    return ChapterResult(summary, claims, [table], [figure],
                         [Sample(T("A served completion (an untrained model: the words are noise, the path is real)",
                                   "서빙된 완성 결과 (학습하지 않은 모델: 내용은 잡음이지만 경로는 실제다)"), answer)],
                         metrics)


def sample_answer(served: ServedModel, prompt: str) -> str:
    """One completion through the official request path, to show what the clients received."""
    import json
    import urllib.request

    with ServerThread(create_app(served)) as server:
        request = urllib.request.Request(server.url + "/v1/completions", method="POST",
                                         headers={"Content-Type": "application/json"},
                                         data=json.dumps({"model": served.model_id, "prompt": prompt,
                                                          "max_tokens": 16, "seed": 0}).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
    return json.dumps(answer, ensure_ascii=False, indent=2)


CHAPTER = Chapter("9.2", T("Deployment", "배포"), run, timed=True)
