"""Chapter 6.2, generation: what temperature, top-k and top-p do to sampled text, and what a KV cache buys.

A small GPT is trained for a fixed number of steps (a few seconds in quick mode; steps, not seconds, so
a busy machine gets the same model and the same verdicts, only later) on the python-docs corpus
(characters as tokens) through the project's own pipeline (token shards → `lm2llm.training` → a run
directory), then loaded back the way `lm2llm generate` loads it. Every sampling setting continues the
same prompts with the same seed, and each is scored on its own samples:

- distinct-2 / distinct-3: the share of distinct character n-grams (variety);
- repetition rate: the share of 4-grams that repeat earlier ones within a sample (loops);
- the model's own perplexity of its samples: exp of the mean negative log-probability the unmodified
  model gives the chosen tokens (how far the setting strays from what the model finds likely).
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

from lm2llm.data import load_documents
from lm2llm.data.shards import ShardWriter
from lm2llm.inference.diversity import distinct_n, repetition_rate
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.speed import latency_curve
from lm2llm.inference.text import TextGenerator
from lm2llm.models import build_model
from lm2llm.tokenizer import CharTokenizer
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Sample,
    T,
    Table,
    demonstration,
    torch_threads,
)
from lm2llm.tour.plots import plt
from lm2llm.training import build_config
from lm2llm.training.run import train

# name, settings: plain temperatures first (a sweep), then truncation at temperature 1
SETTINGS: list[tuple[str, dict]] = [
    ("greedy", {"temperature": 0.0}),
    ("T=0.5", {"temperature": 0.5}),
    ("T=0.8", {"temperature": 0.8}),
    ("T=1.0", {"temperature": 1.0}),
    ("T=1.5", {"temperature": 1.5}),
    ("top-k 10", {"top_k": 10}),
    ("top-p 0.9", {"top_p": 0.9}),
    ("min-p 0.1", {"min_p": 0.1}),
]
STEPS = {True: 150, False: 400}  # quick: gpt-tiny, ~5 s on one idle core; full: gpt-small (see BATCH)
BATCH = {True: 16, False: 8}  # rows of 128 characters per step. Full mode trained 600 steps of 16 rows: 145 s of
# the chapter's 173 s (idle tour, two threads, which gain a model this small little) plus 59 s for its half-budget
# re-check. A step's time follows its rows (one thread: 0.20 CPU s at 16 rows, 0.10 at 8), and at equal
# compute more, smaller steps learn more here: 600 steps of 8 rows reached validation loss 2.42 against 2.62
# for 300 steps of 16. 500 steps of 8 rows cost about 0.4 of the former budget, with the same verdicts at 500 and
# at its re-check's 250; full mode now trains 400 (the re-check, 200, runs beside it: `recheck_alongside`).
TEMPERATURES = ["greedy", "T=0.5", "T=0.8", "T=1.0", "T=1.5"]


def train_small_model(ctx: ChapterContext, documents: list[str]) -> Path:
    """Character-level GPT trained on `documents` for the chapter's step budget; returns the run directory."""
    text = "\n\n".join(documents)
    tokenizer = CharTokenizer.train([text], min_count=2)
    split = int(len(text) * 0.95)
    data, run_dir = ctx.out_dir / "data", ctx.out_dir / "run"
    for stale in (data, run_dir):  # a re-run (--force) trains afresh instead of finding the old checkpoint
        shutil.rmtree(stale, ignore_errors=True)
    writer = ShardWriter(data, tokenizer.vocab_size)
    writer.write("train", tokenizer.encode(text[:split]))
    writer.write("val", tokenizer.encode(text[split:]))
    writer.close(tokenizer="char", source="python-docs")
    tokenizer.save(data / "tokenizer")
    config = build_config(overrides={
        "model": "gpt", "preset": "gpt-tiny" if ctx.quick else "gpt-small", "data": str(data),
        "out": str(run_dir), "max_steps": ctx.steps(STEPS[ctx.quick]),
        "batch_size": BATCH[ctx.quick], "lr": 3e-3, "warmup_steps": 20, "eval_every": 10_000, "eval_batches": 4,
        "log_every": 50, "progress": False, "device": "cpu", "seed": 0,
    })
    with torch_threads(1):  # a second thread only waits on a model this small: 0.24 s a step on two idle threads
        _, run = train(config)  # against 0.20 CPU s on one (8 rows, bf16)
    return run.path


def prompts_from(documents: list[str], count: int) -> list[str]:
    """The opening words of held-out documents: prompts the model did not see continued in training."""
    return [doc.strip()[:12] for doc in documents if len(doc.strip()) >= 12][:count]


def measure_setting(generator: TextGenerator, prompts: list[str], settings: dict, new_tokens: int) -> dict:
    config = SamplingConfig(max_new_tokens=new_tokens, seed=0, logprobs=True, **settings)
    start = time.perf_counter()
    completions = generator.generate(prompts, config)
    seconds = time.perf_counter() - start
    samples = [c.token_ids for c in completions]
    logprobs = [lp for c in completions for lp in c.logprobs]
    return {
        "distinct_2": distinct_n(samples, 2), "distinct_3": distinct_n(samples, 3),
        "repetition": repetition_rate(samples, 4),
        "perplexity": math.exp(-sum(logprobs) / len(logprobs)),
        "tokens_per_s": sum(len(s) for s in samples) / seconds,
        "sample": prompts[0] + completions[0].text,
    }


def plot_sampling(ctx: ChapterContext, scores: dict[str, dict]):
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    x = range(len(TEMPERATURES))
    left.plot(x, [scores[n]["distinct_2"] for n in TEMPERATURES], marker="o", label="distinct-2")
    left.plot(x, [scores[n]["repetition"] for n in TEMPERATURES], marker="s", label="repetition (4-gram)")
    left.set_xticks(list(x), TEMPERATURES)
    left.set_ylim(0, 1)
    left.legend(fontsize=8)
    left.set_title("variety vs temperature")
    names = list(scores)
    right.barh(names, [scores[n]["perplexity"] for n in names], color="#4c72b0")
    right.invert_yaxis()
    right.set_xlabel("model's own perplexity of its samples")
    return ctx.save_figure(fig, "sampling", T("Temperature, truncation and what they do to the samples",
                                              "온도·잘라내기 설정이 샘플에 주는 영향"))


def plot_cache(ctx: ChapterContext, curve: list[dict]):
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    ax.set_title("gpt-small shape, batch 1", fontsize=9)
    contexts = [row["context"] for row in curve]
    ax.plot(contexts, [row["uncached_ms"] for row in curve], marker="o", label="no cache (recompute)")
    ax.plot(contexts, [row["cached_ms"] for row in curve], marker="s", label="KV cache")
    ax.set_xlabel("tokens already in the context")
    ax.set_ylabel("ms per new token")
    ax.legend(fontsize=8)
    return ctx.save_figure(fig, "kv_cache", T("Time per new token with and without the KV cache",
                                              "KV 캐시 유무에 따른 새 토큰 하나의 시간"))


def run(ctx: ChapterContext) -> ChapterResult:
    documents = load_documents("python-docs", limit=340 if ctx.quick else 2040)
    run_dir = train_small_model(ctx, documents[:-40])
    ctx.progress(1, 4)
    generator = TextGenerator.from_run(run_dir)
    prompts = prompts_from(documents[-40:], 8)
    new_tokens = 60 if ctx.quick else 200
    scores = {name: measure_setting(generator, prompts, settings, new_tokens) for name, settings in SETTINGS}
    ctx.progress(2, 4)
    # the cache is timed on the gpt-small shape (the quick model is too small for the cache to matter, and
    # speed does not depend on the weights' values)
    timed = build_model("gpt", "gpt-small", vocab_size=generator.model.config.vocab_size).eval()
    curve = latency_curve(timed, (4, 16, 32, 64, 96, 128), repeats=5 if ctx.quick else 15)
    ctx.progress(3, 4)

    s = scores
    d2 = {n: s[n]["distinct_2"] for n in s}
    ppl = {n: s[n]["perplexity"] for n in s}
    first, last = curve[0], curve[-1]
    claims = [
        demonstration(T("A higher temperature makes samples more varied.",
                "온도를 높이면 샘플이 더 다양해진다."),
              T(f"distinct-2: greedy {d2['greedy']:.2f}, T=0.5 {d2['T=0.5']:.2f}, T=1.0 {d2['T=1.0']:.2f}, "
                f"T=1.5 {d2['T=1.5']:.2f}",
                f"distinct-2: 탐욕 {d2['greedy']:.2f}, T=0.5 {d2['T=0.5']:.2f}, T=1.0 {d2['T=1.0']:.2f}, "
                f"T=1.5 {d2['T=1.5']:.2f}"),
              d2["greedy"] < d2["T=0.5"] < d2["T=1.0"] < d2["T=1.5"]),
        Claim(T("Greedy decoding falls into loops: it repeats itself more than sampling.",
                "탐욕 디코딩은 반복 고리에 빠져 샘플링보다 더 많이 되풀이한다."),
              T(f"repetition rate: greedy {s['greedy']['repetition']:.2f} vs T=1.0 {s['T=1.0']['repetition']:.2f}",
                f"반복률: 탐욕 {s['greedy']['repetition']:.2f} 대 T=1.0 {s['T=1.0']['repetition']:.2f}"),
              s["greedy"]["repetition"] > s["T=1.0"]["repetition"]),
        demonstration(T("A higher temperature picks tokens the model itself finds less likely.",
                "온도가 높을수록 모델 스스로도 덜 그럴듯하다고 보는 토큰을 고른다."),
              T(f"own perplexity: T=0.5 {ppl['T=0.5']:.2f}, T=1.0 {ppl['T=1.0']:.2f}, T=1.5 {ppl['T=1.5']:.2f}",
                f"자기 퍼플렉서티: T=0.5 {ppl['T=0.5']:.2f}, T=1.0 {ppl['T=1.0']:.2f}, T=1.5 {ppl['T=1.5']:.2f}"),
              ppl["T=0.5"] < ppl["T=1.0"] < ppl["T=1.5"]),
        demonstration(T("Top-k and top-p cut the unlikely tail: more likely text than plain sampling, more varied "
                "than greedy.",
                "top-k와 top-p는 가능성 낮은 꼬리를 잘라, 그냥 샘플링보다 그럴듯하고 탐욕보다 다양한 글을 만든다."),
              T(f"perplexity top-k {ppl['top-k 10']:.2f}, top-p {ppl['top-p 0.9']:.2f} vs T=1.0 {ppl['T=1.0']:.2f}; "
                f"distinct-2 {d2['top-k 10']:.2f}, {d2['top-p 0.9']:.2f} vs greedy {d2['greedy']:.2f}",
                f"퍼플렉서티 top-k {ppl['top-k 10']:.2f}, top-p {ppl['top-p 0.9']:.2f} 대 T=1.0 {ppl['T=1.0']:.2f}; "
                f"distinct-2 {d2['top-k 10']:.2f}, {d2['top-p 0.9']:.2f} 대 탐욕 {d2['greedy']:.2f}"),
              max(ppl["top-k 10"], ppl["top-p 0.9"]) < ppl["T=1.0"] and min(d2["top-k 10"], d2["top-p 0.9"]) > d2["greedy"]),
        Claim(T("A KV cache makes each new token cheaper, the more so the longer the context.",
                "KV 캐시는 새 토큰 하나의 비용을 줄이며, 문맥이 길수록 그 효과가 크다."),
              T(f"{first['context']} tokens: {first['uncached_ms']:.2f} → {first['cached_ms']:.2f} ms "
                f"({first['speedup']:.1f}×); {last['context']} tokens: {last['uncached_ms']:.2f} → "
                f"{last['cached_ms']:.2f} ms ({last['speedup']:.1f}×)",
                f"{first['context']}토큰: {first['uncached_ms']:.2f} → {first['cached_ms']:.2f} ms "
                f"({first['speedup']:.1f}배); {last['context']}토큰: {last['uncached_ms']:.2f} → "
                f"{last['cached_ms']:.2f} ms ({last['speedup']:.1f}배)"),
              last["speedup"] > 1.5 and last["speedup"] > first["speedup"]),
    ]
    table = Table(T("Each setting on the same prompts and seed", "같은 프롬프트·시드에서 설정별 결과"),
                  ["setting", "distinct-2", "distinct-3", "repetition", "perplexity", "tokens/s"],
                  [[n, round(v["distinct_2"], 3), round(v["distinct_3"], 3), round(v["repetition"], 3),
                    round(v["perplexity"], 2), round(v["tokens_per_s"])] for n, v in s.items()])
    cache_table = Table(T("Milliseconds per new token", "새 토큰 하나에 드는 밀리초"),
                        ["context", "no cache", "KV cache", "speed-up"],
                        [[r["context"], round(r["uncached_ms"], 3), round(r["cached_ms"], 3), round(r["speedup"], 1)]
                         for r in curve])
    samples = [Sample(T(f"{name}", f"{name}"), v["sample"]) for name, v in s.items()]
    figures = [plot_sampling(ctx, s), plot_cache(ctx, curve)]
    ctx.progress(4, 4)
    params = generator.model.num_params()
    summary = T(
        f"A {params / 1e6:.2f}M-parameter character GPT, trained for {ctx.steps(STEPS[ctx.quick])} steps, sampled "
        f"{len(SETTINGS)} ways: "
        f"distinct-2 rises from {d2['greedy']:.2f} (greedy) to {d2['T=1.5']:.2f} (T=1.5); with a KV cache a "
        f"gpt-small-shaped model makes a token {last['speedup']:.1f}× faster at {last['context']} tokens of context.",
        f"{ctx.steps(STEPS[ctx.quick])}단계 학습한 {params / 1e6:.2f}M 파라미터 문자 단위 GPT를 {len(SETTINGS)}가지로 "
        f"샘플링: distinct-2가 "
        f"탐욕 {d2['greedy']:.2f}에서 T=1.5 {d2['T=1.5']:.2f}로 오르고, KV 캐시를 쓰면 gpt-small 크기 모델이 "
        f"문맥 {last['context']}토큰에서 토큰 하나를 {last['speedup']:.1f}배 빨리 만든다.",
    )
    return ChapterResult(summary, claims=claims, tables=[table, cache_table], figures=figures, samples=samples,
                         metrics={"settings": s, "kv_cache": curve, "params": params, "prompts": prompts})


# training is one thread's work, so the half-budget re-check runs beside the main run (`recheck_alongside`), one
# core each; the KV cache's claim is a ratio of two timings taken on the same core one after the other
CHAPTER = Chapter("6.2", T("Generation: sampling and the KV cache", "생성: 샘플링과 KV 캐시"), run, rechecks=True,
                  recheck_alongside=True)
