"""Chapter 6.3, prompting: how much each prompt technique changes accuracy, and what it costs in tokens.

Every technique of `lm2llm/prompting/techniques.json` (bare question, zero-shot instruction, few-shot with
random or similar examples, chain-of-thought with answer extraction, a role system prompt, a JSON format
constraint) is rendered through each model's own chat template and
scored on three tasks of the synthetic suite (addition, facts, Korean number words to digits), on the
same held-out questions, greedy. Two models: SmolLM2-135M-Instruct and chapter 4.4's fine-tuned GPT.
A technique is said to help only when the paired bootstrap interval of its gap to zero-shot lies above 0
(`lm2llm.prompting.compare`), to hurt when it lies below; otherwise the claim is inconclusive and the
chapter says the technique does not measurably help a model of this size.
"""

from __future__ import annotations

from lm2llm.errors import UserError
from lm2llm.prompting.compare import paired_gap, verdict
from lm2llm.prompting.render import load_generator
from lm2llm.prompting.run import run_technique
from lm2llm.prompting.techniques import get_technique
from lm2llm.stats import wilson_interval
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
from lm2llm.tour.i18n import translate
from lm2llm.tour.plots import plt
from lm2llm.tour.real_llm import BULK_DTYPE

TASKS = ("addition", "facts", "korean_to_digits")
QUICK = ("zero_shot", "few_shot_random", "few_shot_similar", "chain_of_thought", "role", "json_format")
# Self-consistency (five sampled chains, majority vote) is left to `lm2llm prompt run --technique
# self_consistency`: it cost 60 % of this chapter's full run, and it votes over chains of thought, which give a
# 135M model no measurable gain here.
FULL = ("bare", *QUICK)
# Held-out questions per task. Full mode asked 50 (150 per technique, pooled): 219 s wall of the idle tour, the
# seven techniques' generation on SmolLM2 nearly all of it, and none of it waste to cut (prefill of the
# few-shot prompts and the reply tokens the extractors read; batches are already 64 rows). Its verdicts were
# decided by wide margins (few-shot gap +0.13 [+0.07, +0.18]; JSON kept in 0.35 [0.28, 0.43] against 0.5;
# the other gaps inconclusive at +0.01 or less), so 30 per task (90 pooled) keeps them and costs 0.6 of it:
# measured after, every verdict the same (few-shot +0.08 [+0.02, +0.13]; JSON 0.37 [0.27, 0.47]), 223 CPU s
# on one thread of a busy machine against 404 CPU s on two idle ones.
N = {True: 6, False: 30}


def sft_model_dir(ctx: ChapterContext):
    """Chapter 4.4's fully fine-tuned run, if that chapter ran in this tour."""
    result = ctx.result_of("4.4")
    saved = result.metrics.get("runs", {}).get("full", {}).get("dir") if result else None
    run = ctx.chapter_dir("4.4") / saved if saved else None
    return run if run is not None and (run / "model.safetensors").is_file() else None


def measure(generator, techniques, n: int) -> dict[str, dict[str, dict]]:
    """Results per technique and task; a technique whose prompts do not fit the model's context is left out
    (a small model's context is a real limit on few-shot prompting: chapter 4.4's GPT sees 128 tokens)."""
    results = {}
    for t in techniques:
        try:
            results[t] = {task: run_technique(generator, get_technique(t), task, n) for task in TASKS}
        except UserError:
            continue
    return results


def pooled(results: dict[str, dict], technique: str) -> list[bool]:
    return [hit for task in TASKS for hit in results[technique][task]["rights"]]


def accuracy(results: dict[str, dict], technique: str) -> float:
    hits = pooled(results, technique)
    return sum(hits) / len(hits)


def plot(ctx: ChapterContext, results: dict[str, dict], techniques):
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(TASKS)
    for j, task in enumerate(TASKS):
        values = [results[t][task]["accuracy"] for t in techniques]
        errors = [[v - results[t][task]["low"] for t, v in zip(techniques, values, strict=True)],
                  [results[t][task]["high"] - v for t, v in zip(techniques, values, strict=True)]]
        ax.bar([i + j * width for i in range(len(techniques))], values, width, yerr=errors, capsize=2, label=task)
    ax.set_xticks([i + width for i in range(len(techniques))], techniques, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy (95% interval)")
    ax.legend(fontsize=8)
    return ctx.save_figure(fig, "techniques", T("SmolLM2-135M-Instruct: accuracy per technique and task",
                                                "SmolLM2-135M-Instruct: 기법·과제별 정확도"))


def run(ctx: ChapterContext) -> ChapterResult:
    n = N[ctx.quick]
    techniques = QUICK if ctx.quick else FULL
    smol = measure(load_generator(dtype=BULK_DTYPE), techniques, n)
    ctx.progress(1, 2)
    sft_dir = sft_model_dir(ctx)
    sft_techniques = ("zero_shot", "bare", "few_shot_random")
    sft = measure(load_generator(str(sft_dir)), sft_techniques, n) if sft_dir else {}
    ctx.progress(2, 2)
    result = report(ctx, smol, sft, techniques, n)
    result.metrics["sft_did_not_fit"] = [t for t in sft_techniques if sft_dir and t not in sft]
    return result


def report(ctx: ChapterContext, smol: dict, sft: dict, techniques, n: int) -> ChapterResult:
    """Claims, tables and the figure from the measured results (per technique, per task)."""
    gaps = {t: paired_gap(pooled(smol, t), pooled(smol, "zero_shot")) for t in techniques if t != "zero_shot"}
    similar = paired_gap(pooled(smol, "few_shot_similar"), pooled(smol, "few_shot_random"))

    def gap_text(t: str, lang: str = "en") -> str:
        mean, low, high = gaps[t]
        if lang == "ko":
            return f"{translate(t, lang)}: {accuracy(smol, t):.2f}, 제로샷 {accuracy(smol, 'zero_shot'):.2f} 대비 차이 " \
                   f"{mean:+.2f} [{low:+.2f}, {high:+.2f}] → {translate(verdict(low, high), lang)}"
        return f"{t}: {accuracy(smol, t):.2f} vs zero-shot {accuracy(smol, 'zero_shot'):.2f}, gap {mean:+.2f} " \
               f"[{low:+.2f}, {high:+.2f}] → {verdict(low, high)}"

    def gap_verdict(gap: tuple[float, float, float]) -> bool | None:
        return compare_intervals((gap[1], gap[2]), (0.0, 0.0))

    def claim(technique: str, en: str, ko: str) -> Claim:
        return Claim(T(en, ko), T(gap_text(technique), gap_text(technique, "ko")), gap_verdict(gaps[technique]),
                     chance=0.0, interval=(gaps[technique][1], gaps[technique][2]))  # chance: no gap

    kept = sum(round(smol["json_format"][t]["follows_format"] * smol["json_format"][t]["n"]) for t in TASKS)
    asked = sum(smol["json_format"][t]["n"] for t in TASKS)
    json_follow, json_ci = kept / asked, wilson_interval(kept, asked)
    cost = {t: sum(smol[t][task]["prompt_tokens"] for task in TASKS) / len(TASKS) for t in techniques}
    claims = [
        claim("few_shot_random", "Showing a few solved examples (few-shot) raises a 135M model's accuracy over an "
              "instruction alone.", "풀이 예시 몇 개(퓨샷)를 보여 주면 135M 모델의 정확도가 지시만 줄 때보다 오른다."),
        claim("chain_of_thought", "Asking a 135M model to think step by step (chain-of-thought) raises its accuracy.",
              "135M 모델에게 단계별로 생각하라고(사고의 사슬) 하면 정확도가 오른다."),
        claim("role", "A role in the system prompt raises a 135M model's accuracy.",
              "시스템 프롬프트에 역할을 주면 135M 모델의 정확도가 오른다."),
        Claim(T("Examples similar to the question help more than random ones.",
                "질문과 비슷한 예시가 무작위 예시보다 더 돕는다."),
              T(f"similar − random: {similar[0]:+.2f} [{similar[1]:+.2f}, {similar[2]:+.2f}] → "
                f"{verdict(similar[1], similar[2])}",
                f"유사 − 무작위: {similar[0]:+.2f} [{similar[1]:+.2f}, {similar[2]:+.2f}] → "
                f"{translate(verdict(similar[1], similar[2]), 'ko')}"),
              gap_verdict(similar), chance=0.0, interval=(similar[1], similar[2])),
        Claim(T("A 135M model keeps an output-format constraint (a JSON object) in most replies.",
                "135M 모델은 출력 형식 제약(JSON 객체)을 대부분의 답에서 지킨다."),
              T(f"replies with a JSON object holding \"answer\": {json_follow:.0%} [{json_ci[0]:.2f}, {json_ci[1]:.2f}] "
                f"(n={asked})",
                f"\"answer\"가 든 JSON 객체로 답한 비율: {json_follow:.0%} [{json_ci[0]:.2f}, {json_ci[1]:.2f}] (n={asked})"),
              compare_intervals(json_ci, (0.5, 0.5))),
        demonstration(T("Few-shot examples cost prompt tokens: several times the zero-shot prompt.",
                "퓨샷 예시는 프롬프트 토큰을 쓴다: 제로샷 프롬프트의 몇 배."),
              T(f"mean prompt tokens: zero-shot {cost['zero_shot']:.0f}, few-shot {cost['few_shot_random']:.0f} "
                f"({cost['few_shot_random'] / cost['zero_shot']:.1f}×)",
                f"평균 프롬프트 토큰: 제로샷 {cost['zero_shot']:.0f}, 퓨샷 {cost['few_shot_random']:.0f} "
                f"({cost['few_shot_random'] / cost['zero_shot']:.1f}배)"),
              cost["few_shot_random"] > 2 * cost["zero_shot"]),
    ]
    rows = [[model, t, task, round(r["accuracy"], 3), f"[{r['low']:.2f}, {r['high']:.2f}]", round(r["chance"], 3),
             round(r["lenient"], 2), round(r["follows_format"], 2), round(r["prompt_tokens"]), round(r["completion_tokens"])]
            for model, results in (("SmolLM2-135M-Instruct", smol), ("our SFT GPT (4.4)", sft))
            for t, per_task in results.items() for task, r in per_task.items()]
    table = Table(T("Accuracy per technique and task (same held-out questions, greedy)",
                    "기법·과제별 정확도 (같은 보류 질문, greedy)"),
                  ["model", "technique", "task", "accuracy", "95% interval", "chance", "gold anywhere in reply",
                   "format kept", "prompt tokens", "generated tokens"], rows)
    gap_table = Table(T("Gap to zero-shot, paired bootstrap over questions", "제로샷과의 차이 (질문 단위 짝 부트스트랩)"),
                      ["technique", "gap", "95% interval", "verdict"],
                      [[t, round(g[0], 3), f"[{g[1]:+.2f}, {g[2]:+.2f}]", verdict(g[1], g[2])] for t, g in gaps.items()])
    cot = smol["chain_of_thought"][TASKS[0]]["examples"][0]
    samples = [Sample(T(f"Chain-of-thought reply ({TASKS[0]})", f"사고의 사슬 답 ({TASKS[0]})"),
                      f"Q: {cot['question']}\n{cot['reply']}\n→ extracted: {cot['answer']} (gold {cot['gold']})")]
    helping = [t for t, g in gaps.items() if g[1] > 0]
    summary = T(
        f"On {n} held-out questions per task, SmolLM2-135M-Instruct scores {accuracy(smol, 'zero_shot'):.0%} "
        f"zero-shot; techniques that measurably help: {', '.join(helping) or 'none'}.",
        f"과제당 보류 질문 {n}개에서 SmolLM2-135M-Instruct의 제로샷 정확도는 {accuracy(smol, 'zero_shot'):.0%}; "
        f"측정상 도움이 된 기법: {', '.join(helping) or '없음'}.")
    strip = {m: {t: {task: {k: v for k, v in r.items() if k != "rights"} for task, r in per.items()}
                 for t, per in results.items()} for m, results in (("smollm2", smol), ("sft", sft))}
    return ChapterResult(summary, claims=claims, tables=[table, gap_table], figures=[plot(ctx, smol, techniques)],
                         samples=samples, metrics={"results": strip, "gaps": gaps, "n": n})


CHAPTER = Chapter("6.3", T("Prompting", "프롬프팅"), run, needs=("4.4",))
