"""Chapter 9.1, evaluation and model selection: the models of this tour (and SmolLM2) side by side.

The GPT and LSTM pre-trained in 4.3, a Kneser-Ney trigram counted here on python-docs, and, outside quick
mode, SmolLM2-135M-Instruct are scored by the lm-eval-compatible harness on held-out python-docs bits per
byte and on the python-docs cloze (accuracy, centred on chance with a 95 % interval), then measured by
`lm2llm select` (each model in a fresh process: time to first token, decode speed at batch 1 and 8, peak
memory, file size, cost). The claims are computed from those numbers; the three perplexity protocols are
shown for the GPT on the same passages.
"""

from __future__ import annotations

from dataclasses import asdict

import torch

from lm2llm.data import load_documents
from lm2llm.data.prepare import split_of
from lm2llm.evaluate import find_task, load_scorer, run_task
from lm2llm.evaluate.metrics import Z95, centred
from lm2llm.evaluate.protocols import compare_protocols
from lm2llm.evaluate.selection import (
    DEFAULT_PRICE_PER_HOUR,
    measure_in_subprocess,
    pareto_figure,
    pareto_front,
)
from lm2llm.ngram import NgramConfig, save, train
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    T,
    Table,
    compare_intervals,
)

SMOLLM2 = "smollm2-135m-instruct"


def ngram_run(ctx: ChapterContext) -> str:
    """A Kneser-Ney trigram on python-docs lines outside the held-out split (the bpb passages are held out)."""
    documents = load_documents("python-docs", limit=400 if ctx.quick else 4000)
    lines = [line for doc in documents if split_of(doc, 0.1) == "train" for line in doc.splitlines() if line.strip()]
    directory = ctx.out_dir / "kn-trigram"
    # force: a chapter that was interrupted and runs again replaces its own earlier trigram
    save(train(lines, NgramConfig(order=3, tokenize="words", discount_fallback=True)), directory, force=True)
    return str(directory)


def run(ctx: ChapterContext) -> ChapterResult:
    runs = ctx.chapter_dir("4.3") / "runs"
    models = {"GPT (4.3)": str(runs / "gpt"), "LSTM (4.3)": str(runs / "lstm"), "KN trigram": ngram_run(ctx)}
    if not ctx.quick:
        models["SmolLM2-135M"] = SMOLLM2
    cloze_limit, bpb_limit = (20, 8) if ctx.quick else (100, 20)
    bpb_task = find_task("pydocs-bpb")
    measured, bpb = [], {}
    for index, (label, model) in enumerate(models.items()):
        m = measure_in_subprocess(model, task="python-cloze", limit=cloze_limit, threads=torch.get_num_threads())
        m.model = label
        measured.append(m)
        bpb[label] = run_task(load_scorer(model), bpb_task, limit=bpb_limit).metrics["bits_per_byte"]
        ctx.progress(index + 1, len(models) + 1)
    chance = find_task("python-cloze").chance
    rows = [[m.model, f"{m.quality:.3f} ± {m.quality_stderr:.3f}",
             f"{centred(m.quality, chance):.3f} [{centred(m.quality - Z95 * m.quality_stderr, chance):.2f}, "
             f"{centred(m.quality + Z95 * m.quality_stderr, chance):.2f}]", f"{bpb[m.model]:.3f}",
             f"{m.ttft_ms:.1f}", f"{m.decode_tps_batch1:.0f}", f"{m.decode_tps_batch8:.0f}", f"{m.peak_rss_mb:.0f}",
             f"{m.file_mb:.2f}", f"{m.usd_per_million_tokens:.4f}"] for m in measured]
    table = Table(T("Model selection on this machine (python-cloze: 4 endings, chance 0.25)",
                    "이 기계에서의 모델 선택 (python-cloze: 끝맺음 4개, 우연 수준 0.25)"),
                  ["model", "cloze acc ± stderr", "centred [95% CI]", "pydocs bits/byte", "TTFT ms", "tok/s b1",
                   "tok/s b8", "peak RSS MB", "file MB", f"USD/M tok at {DEFAULT_PRICE_PER_HOUR} USD/h"], rows)
    figure = ctx.save_figure(pareto_figure(measured, "python-cloze accuracy vs. decode speed"), "pareto",
                             T("Quality vs. speed: the Pareto front in red", "품질 대 속도: 빨간 점이 파레토 전선"))
    gpt = load_scorer(models["GPT (4.3)"])
    protocols = compare_protocols(gpt, [d["text"] for d in bpb_task.docs()[:bpb_limit]], gpt.max_length)
    protocol_table = Table(T(f"One model, one text, three perplexity protocols (GPT, n_ctx={gpt.max_length})",
                             f"한 모델, 한 텍스트, 세 가지 퍼플렉서티 계산법 (GPT, n_ctx={gpt.max_length})"),
                           ["protocol", "tokens scored", "token perplexity", "bits per byte", "how"],
                           [[name, p["tokens_scored"], f"{p['token_perplexity']:.2f}", f"{p['bits_per_byte']:.3f}",
                             p["note"]] for name, p in protocols.items()])
    by_bpb = sorted(bpb, key=bpb.get)
    by_acc = [m.model for m in sorted(measured, key=lambda m: -m.quality)]
    interval = {m.model: (m.quality - Z95 * m.quality_stderr, m.quality + Z95 * m.quality_stderr) for m in measured}
    # each pair of models: does the one with fewer bits per byte have the higher accuracy? (None: intervals overlap)
    verdicts = [compare_intervals(interval[a], interval[b]) for i, a in enumerate(by_bpb) for b in by_bpb[i + 1:]]
    decided = [v for v in verdicts if v is not None]
    same_order = None if not decided else all(decided)
    budget = sorted(m.ttft_ms for m in measured)[len(measured) // 2]  # the median time to first token
    best = max(measured, key=lambda m: m.quality)
    admissible = [m for m in measured if m.ttft_ms <= budget]
    best_fast = max(admissible, key=lambda m: m.quality)
    claims = [
        Claim(T("Bits per byte on held-out text orders the models the same way as a downstream task's accuracy.",
                "처음 보는 텍스트의 바이트당 비트는 다운스트림 과제 정확도와 같은 순서로 모델을 줄 세운다."),
              T(f"by bits/byte: {' < '.join(by_bpb)}; by cloze accuracy: {' > '.join(by_acc)}; of {len(verdicts)} "
                f"pairs, {len(decided)} have non-overlapping 95 % accuracy intervals, {decided.count(False)} of "
                "them in the opposite order",
                f"바이트당 비트 순: {' < '.join(by_bpb)}; cloze 정확도 순: {' > '.join(by_acc)}; {len(verdicts)}쌍 중 "
                f"정확도 95 % 구간이 겹치지 않는 쌍 {len(decided)}개, 그중 순서가 뒤집힌 쌍 {decided.count(False)}개"),
              same_order, chance=chance),
        Claim(T("The most accurate model is not the best choice under a latency budget.",
                "가장 정확한 모델이 지연 시간 예산 아래에서 최선의 선택은 아니다."),
              T(f"budget {budget:.1f} ms to first token (the median): most accurate {best.model} "
                f"({best.ttft_ms:.1f} ms); best within budget {best_fast.model}",
                f"첫 토큰까지 {budget:.1f} ms 예산(중앙값): 가장 정확한 모델 {best.model}({best.ttft_ms:.1f} ms), "
                f"예산 안의 최선 {best_fast.model}"),
              best_fast.model != best.model),
    ]
    ctx.progress(len(models) + 1, len(models) + 1)
    summary = T(f"{len(models)} models scored and measured on this machine; Pareto front: "
                f"{', '.join(pareto_front(measured))}.",
                f"모델 {len(models)}개를 이 기계에서 채점하고 측정했다. 파레토 전선: {', '.join(pareto_front(measured))}.")
    return ChapterResult(summary, claims=claims, tables=[table, protocol_table], figures=[figure],
                         metrics={"measurements": [asdict(m) for m in measured], "bits_per_byte": bpb,
                                  "protocols": protocols, "latency_budget_ms": budget})


CHAPTER = Chapter("9.1", T("Evaluation and model selection", "평가와 모델 선택"), run, needs=("4.3",), timed=True)
