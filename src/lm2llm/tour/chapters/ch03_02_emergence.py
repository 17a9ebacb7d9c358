"""Chapter 3.2, emergent abilities: in-context learning, induction heads and scratchpads appearing with size.

A family of GPTs of growing width (the sweep's shape rule) trains the same steps on python-docs mixed with
synthetic in-context tasks (`lm2llm.scale.tasks`), character-level. Each size is then scored on fresh
key→value lines at 0–8 shots (chance 1 in 10; the ceiling is a perfect copier's), on held-out 3-digit
additions written plain, reversed and with a scratchpad, and for induction heads. Every ability is shown
twice, as the sharp exact-match score and as the smooth per-token log-likelihood of the right answer, the
two views of the "emergence is a metric artefact" debate (Schaeffer et al. 2023).

The key→value lines are also a 10-label few-shot classification, so each size is checked for Zhao et al.
2021's two findings (`lm2llm.scale.calibration`): the same demonstrations in another order give another
accuracy, and contextual calibration with a content-free query ("N/A", W = diag(p_cf)⁻¹) corrects part of
the prompt's bias, on the 8-shot lines under four orderings of their shots (quick mode: two orderings,
largest size only).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

from lm2llm.scale import tasks
from lm2llm.scale.emergence import EmergenceSettings, emergence
from lm2llm.scale.probes import difference_interval
from lm2llm.stats import Z95, wilson_interval
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, Claim, Sample, T, Table
from lm2llm.tour.plots import log_x_axes, plt

# Full mode trains four of the command's five default sizes (w128, the costliest by half, is left out to keep
# the chapter near a minute; `lm2llm scale emergence` trains all five).
SETTINGS = {True: EmergenceSettings(widths=(32, 64, 96), steps=150, docs=400, task_docs=300, test_examples=50,
                                    orderings=2, calibration_widths=(96,)),
            False: EmergenceSettings(widths=(32, 48, 64, 96))}
UNIFORM_ATTENTION = 1 / 36  # an induction head's target among the ~36 keys a second-copy query sees on average
CHANCE = 1 / len(tasks.VALUES)  # a key→value answer guessed among the values
SUM_CHANCE = 0.0  # a 3–4 digit sum guessed: about 1 in 1,000, nil at 100 examples


def _wilson(p: float, n: int) -> tuple[float, float]:
    return wilson_interval(p * n, n, Z95)


def _interval(p: float, n: int) -> str:
    low, high = _wilson(p, n)
    return f"{p:.2f} [{low:.2f}, {high:.2f}]"


def _span(pair: Sequence[float]) -> str:
    return f"[{pair[0]:+.2f}, {pair[1]:+.2f}]"


def _beats(better: float, worse: float, n: int, chance: float) -> tuple[bool | None, tuple[float, float]]:
    """The verdict on "`better` scores above `worse`" (each of n examples) and the difference's 95 % interval:
    True when the interval lies above 0, False below, None (inconclusive) when it holds 0 or when both scores
    sit at the floor (each one's interval reaches chance)."""
    gain = difference_interval(better, n, worse, n, Z95)
    floor = all(_wilson(p, n)[0] <= chance for p in (better, worse))
    return (None if floor else True if gain[0] > 0 else False if gain[1] < 0 else None), gain


def _smooth_vs_sharp(models: list[dict], shots: str) -> tuple[bool | None, int, int]:
    """Schaeffer et al.'s contrast on one task across sizes: the steps where the smooth view rises beyond its
    95 % interval, and where the sharp view does not move beyond its own. Holds when the smooth view rises at
    every step and the sharp one stays flat at one at least; fails when the smooth view falls at a step or the
    sharp one moves at every step."""
    rises = falls = flat = 0
    for small, large in itertools.pairwise(m["kv"][shots] for m in models):
        half = Z95 * math.hypot(small["logprob_se"], large["logprob_se"])
        change = large["logprob"] - small["logprob"]
        rises += change - half > 0
        falls += change + half < 0
        low, high = difference_interval(large["exact"], large["n"], small["exact"], small["n"], Z95)
        flat += low <= 0 <= high
    steps = len(models) - 1
    verdict = True if rises == steps and flat else False if falls or not flat else None
    return verdict, rises, flat


def _plots(ctx: ChapterContext, models: list[dict]) -> list:
    sizes = [m["params"]["all"] for m in models]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for m in models:
        shots = [int(k) for k in m["kv"]]
        axes[0].plot(shots, [v["choice"] for v in m["kv"].values()], "o-", markersize=3,
                     label=f"{m['shape']} ({m['params']['all']:,})")
    axes[0].plot(tasks.SHOTS, [tasks.perfect_copier(k) for k in tasks.SHOTS], "k:", label="perfect copier")
    axes[0].axhline(1 / len(tasks.VALUES), color="grey", linestyle="--", linewidth=0.8, label="chance")
    axes[0].set_xlabel("shots in the prompt")
    axes[0].set_ylabel("key→value accuracy")
    axes[0].legend(fontsize=6)
    axes[1].plot(sizes, [m["induction_score"] for m in models], "o-", label="induction score (best head)")
    axes[1].plot(sizes, [m["first_copy_loss"] - m["second_copy_loss"] for m in models], "s-",
                 label="loss drop on the repeat (nats)")
    axes[1].axhline(UNIFORM_ATTENTION, color="grey", linestyle="--", linewidth=0.8, label="uniform attention")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("parameters")
    axes[1].legend(fontsize=6)
    icl = ctx.save_figure(fig, "in_context", T("In-context learning by size: accuracy against shots; induction heads",
                                               "크기별 문맥 내 학습: 예시 수에 따른 정확도; 유도 헤드"))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    last = str(tasks.SHOTS[-1])
    for form, name in zip(tasks.ADDITION_FORMATS, ("plain", "reversed", "scratchpad"), strict=True):
        axes[0].plot(sizes, [m["addition"][form]["exact"] for m in models], "o-", label=f"addition, {name}")
        axes[1].plot(sizes, [m["addition"][form]["logprob"] for m in models], "o-", label=f"addition, {name}")
    axes[0].plot(sizes, [m["kv"][last]["exact"] for m in models], "s--", label=f"key→value, {last} shots")
    axes[1].plot(sizes, [m["kv"][last]["logprob"] for m in models], "s--", label=f"key→value, {last} shots")
    axes[0].set_ylabel("exact match (sharp)")
    axes[1].set_ylabel("log-likelihood per answer token (smooth)")
    for ax in axes:
        log_x_axes(ax, "parameters", legend_size=6)
    views = ctx.save_figure(fig, "sharp_vs_smooth", T("The same runs, scored sharply and smoothly",
                                                      "같은 실행을 날카롭게, 그리고 매끄럽게 채점"))
    return [icl, views]


def _calibration(models: list[dict]) -> tuple[Table, list[Claim]]:
    """Zhao et al.'s contextual calibration and order sensitivity, per size; claims on the largest."""
    rows = [[m["shape"], m["calibration"]["n"], f"{m['calibration']['raw']:.2f}", f"{m['calibration']['calibrated']:.2f}",
             f"{m['calibration']['gain']:+.2f} {_span(m['calibration']['gain_interval'])}",
             " / ".join(f"{a:.2f}" for a in m["calibration"]["raw_by_ordering"]),
             f"{m['calibration']['raw_spread']:.2f}", f"{m['calibration']['calibrated_spread']:.2f}"]
            for m in models if "calibration" in m]
    orderings = models[-1]["calibration"]["orderings"]
    table = Table(T(f"Few-shot key→value (8 shots) under {orderings} orderings of the same shots: accuracy without and "
                    f"with contextual calibration (95 % bootstrap intervals over lines; chance {CHANCE:.2f})",
                    f"같은 예시 8개를 {orderings}가지 순서로 둔 키→값 과제: 문맥 보정 전후 정확도 (줄 단위 95 % 부트스트랩 "
                    f"구간; 우연 수준 {CHANCE:.2f})"),
                  ["shape", "lines", "accuracy", "calibrated", "gain", "accuracy per ordering", "spread (max − min)",
                   "spread calibrated"], rows)
    c, shape = models[-1]["calibration"], models[-1]["shape"]
    gain, change = c["gain_interval"], c["spread_change_interval"]
    floor = all(_wilson(p, c["n"])[0] <= CHANCE for p in (c["raw"], c["calibrated"]))
    claims = [
        Claim(T("Contextual calibration with a content-free input raises few-shot accuracy (Zhao et al. 2021)",
                "내용 없는 입력으로 하는 문맥 보정이 few-shot 정확도를 올린다 (Zhao et al. 2021)"),
              T(f"{shape}, 8-shot key→value accuracy over {c['orderings']} orderings × {c['n']} lines: "
                f"{_interval(c['raw'], c['n'])} → {_interval(c['calibrated'], c['n'])} calibrated (chance "
                f"{CHANCE:.2f}); gain 95 % {_span(gain)}",
                f"{shape}, 8-shot 키→값 정확도, 순서 {c['orderings']}가지 × {c['n']}줄: {_interval(c['raw'], c['n'])} → "
                f"보정 후 {_interval(c['calibrated'], c['n'])} (우연 수준 {CHANCE:.2f}); 향상 95 % {_span(gain)}"),
              None if floor else True if gain[0] > 0 else False if gain[1] < 0 else None, chance=CHANCE,
              interval=tuple(gain)),
        Claim(T("The same demonstrations in another order give another accuracy, and calibration narrows that spread",
                "같은 예시도 순서가 바뀌면 정확도가 달라지고, 보정은 그 폭을 줄인다"),
              T(f"{shape}: accuracy per ordering {', '.join(f'{a:.2f}' for a in c['raw_by_ordering'])} (chance "
                f"{CHANCE:.2f}; spread {c['raw_spread']:.2f}, 95 % {_span(c['raw_spread_interval'])}); calibrated "
                f"spread {c['calibrated_spread']:.2f}, change 95 % {_span(change)}; holds when the change lies below 0",
                f"{shape}: 순서별 정확도 {', '.join(f'{a:.2f}' for a in c['raw_by_ordering'])} (우연 수준 {CHANCE:.2f}; 폭 "
                f"{c['raw_spread']:.2f}, 95 % {_span(c['raw_spread_interval'])}); 보정 후 폭 {c['calibrated_spread']:.2f}, "
                f"변화 95 % {_span(change)}; 변화가 0보다 아래여야 성립"),
              None if floor else True if change[1] < 0 else False if change[0] > 0 else None, chance=CHANCE),
    ]
    return table, claims


def run(ctx: ChapterContext) -> ChapterResult:
    settings = SETTINGS[ctx.quick]
    record = emergence(settings, ctx.out_dir / "emergence", parallel=2,
                       progress=lambda done, total: ctx.progress(done, total + 1))
    models = record["models"]
    small, large = models[0], models[-1]
    n = settings.test_examples
    last, none = str(tasks.SHOTS[-1]), str(tasks.SHOTS[0])
    rows = []
    for m in models:
        rows.append([m["shape"], m["params"]["all"], round(m["val_loss"], 3),
                     *[_interval(m["kv"][str(k)]["choice"], n) for k in tasks.SHOTS],
                     round(m["induction_score"], 3), round(m["in_context_score"], 3),
                     *[_interval(m["addition"][f]["exact"], n) for f in tasks.ADDITION_FORMATS]])
    table = Table(T("Per size: key→value accuracy by shots, induction, in-context score, addition exact match "
                    f"(95 % Wilson intervals; chance {CHANCE:.2f} for key→value, about 0 for sums)",
                    "크기별: 예시 수에 따른 키→값 정확도, 유도 점수, 문맥 점수, 덧셈 완전 일치 (95 % Wilson 구간; "
                    f"우연 수준 키→값 {CHANCE:.2f}, 덧셈 약 0)"),
                  ["shape", "params", "val loss", *[f"kv {k}-shot" for k in tasks.SHOTS], "induction",
                   "in-context score", "add plain", "add reversed", "add scratchpad"], rows)
    smooth = [m["kv"][last]["logprob"] for m in models]
    sharp = [m["kv"][last]["exact"] for m in models]
    small_acc, large_acc, zero_acc = small["kv"][last]["choice"], large["kv"][last]["choice"], large["kv"][none]["choice"]
    icl, icl_gain = _beats(large_acc, small_acc, n, CHANCE)
    shots_help, shot_gain = _beats(large_acc, zero_acc, n, CHANCE)
    add = large["addition"]
    best_form = max(("R", "S"), key=lambda f: add[f]["exact"])
    formats_help, format_gain = _beats(add[best_form]["exact"], add["P"]["exact"], n, SUM_CHANCE)
    smooth_verdict, smooth_rises, sharp_flat = _smooth_vs_sharp(models, last)
    sharp_text = ", ".join(_interval(v, n) for v in sharp)
    claims = [
        Claim(T("In-context learning appears with scale: a larger model uses examples in its prompt better.",
                "문맥 내 학습은 규모와 함께 나타난다: 큰 모델이 프롬프트 속 예시를 더 잘 쓴다."),
              T(f"key→value accuracy at {last} shots: {small['shape']} {_interval(small_acc, n)}, {large['shape']} "
                f"{_interval(large_acc, n)} (chance {CHANCE:.2f}); difference 95 % {_span(icl_gain)}",
                f"{last}-shot 키→값 정확도: {small['shape']} {_interval(small_acc, n)}, {large['shape']} "
                f"{_interval(large_acc, n)} (우연 수준 {CHANCE:.2f}); 차이 95 % {_span(icl_gain)}"),
              icl, chance=CHANCE, interval=_wilson(large_acc, n)),
        Claim(T("More examples in the prompt help the largest model, without any weight update.",
                "가장 큰 모델은 가중치를 바꾸지 않고도 프롬프트에 예시가 많을수록 더 잘한다."),
              T(f"{large['shape']} key→value accuracy: {_interval(zero_acc, n)} at 0 shots vs {_interval(large_acc, n)} "
                f"at {last} (chance {CHANCE:.2f}); difference 95 % {_span(shot_gain)}",
                f"{large['shape']} 키→값 정확도: 0-shot {_interval(zero_acc, n)}, {last}-shot {_interval(large_acc, n)} "
                f"(우연 수준 {CHANCE:.2f}); 차이 95 % {_span(shot_gain)}"),
              shots_help, chance=CHANCE, interval=_wilson(large_acc, n)),
        Claim(T("Induction heads form in the larger models: a head attends to the token after the current "
                "token's earlier occurrence.",
                "큰 모델에는 유도 헤드가 생긴다: 현재 토큰이 앞서 나온 자리의 다음 토큰을 보는 헤드."),
              T(f"best head's score {small['shape']} {small['induction_score']:.2f}, {large['shape']} "
                f"{large['induction_score']:.2f}; uniform attention ≈ {UNIFORM_ATTENTION:.2f}",
                f"가장 높은 헤드 점수 {small['shape']} {small['induction_score']:.2f}, {large['shape']} "
                f"{large['induction_score']:.2f}; 균등 주의 ≈ {UNIFORM_ATTENTION:.2f}"),
              large["induction_score"] > max(small["induction_score"], 3 * UNIFORM_ATTENTION)),
        Claim(T("Writing the work out (reversed digits or a scratchpad) makes small models far better at addition "
                "than the plain format.",
                "풀이를 적게 하면(자리 뒤집기나 스크래치패드) 작은 모델도 평범한 형식보다 덧셈을 훨씬 잘한다."),
              T(f"{large['shape']} exact match on {n} held-out sums: plain {_interval(add['P']['exact'], n)}, reversed "
                f"{_interval(add['R']['exact'], n)}, scratchpad {_interval(add['S']['exact'], n)} (chance ≈ 0); best "
                f"minus plain 95 % {_span(format_gain)}; inconclusive while every format sits at 0",
                f"{large['shape']}의 처음 보는 덧셈 {n}개 완전 일치: 평범 {_interval(add['P']['exact'], n)}, 뒤집기 "
                f"{_interval(add['R']['exact'], n)}, 스크래치패드 {_interval(add['S']['exact'], n)} (우연 수준 ≈ 0); "
                f"최고 − 평범 95 % {_span(format_gain)}; 모든 형식이 0이면 판단 보류"),
              formats_help, chance=SUM_CHANCE, interval=_wilson(add[best_form]["exact"], n)),
        Claim(T("Judged by a smooth metric, the ability grows steadily with size where exact match looks flat "
                "or jumpy.",
                "매끄러운 지표로 보면 능력은 크기와 함께 꾸준히 자라지만, 완전 일치로 보면 평평하거나 들쭉날쭉하다."),
              T(f"key→value at {last} shots over {len(models)} sizes: log-likelihood per answer token "
                f"{', '.join(f'{v:.2f}' for v in smooth)} rises beyond its 95 % interval at {smooth_rises} of "
                f"{len(models) - 1} steps; exact match {sharp_text} (chance {CHANCE:.2f}) stays within its 95 % "
                f"interval at {sharp_flat}",
                f"{len(models)}개 크기의 {last}-shot 키→값: 답 토큰당 로그우도 {', '.join(f'{v:.2f}' for v in smooth)}는 "
                f"{len(models) - 1}단계 중 {smooth_rises}단계에서 95 % 구간을 넘어 오름; 완전 일치 {sharp_text} "
                f"(우연 수준 {CHANCE:.2f})는 {sharp_flat}단계에서 95 % 구간 안에 머묾"),
              smooth_verdict, chance=CHANCE),
    ]
    calibration_table, calibration_claims = _calibration(models)
    claims += calibration_claims
    samples = [Sample(T(f"{large['shape']} completes held-out additions (greedy)",
                        f"{large['shape']}가 처음 보는 덧셈을 잇는다 (greedy)"),
                      "\n".join(large["addition"][f]["sample"] for f in tasks.ADDITION_FORMATS))]
    corpus = record["corpus"]
    summary = T(f"{len(models)} sizes ({models[0]['params']['all']:,}–{large['params']['all']:,} parameters), "
                f"{settings.steps} steps each on {corpus['prose_docs']} python-docs documents + {corpus['task_docs']} "
                f"task documents: {last}-shot key→value accuracy {small['kv'][last]['choice']:.2f} → "
                f"{large['kv'][last]['choice']:.2f}, induction score {small['induction_score']:.2f} → "
                f"{large['induction_score']:.2f}.",
                f"{len(models)}개 크기({models[0]['params']['all']:,}–{large['params']['all']:,} 매개변수), 각각 "
                f"{settings.steps}단계, python-docs 문서 {corpus['prose_docs']}개 + 과제 문서 {corpus['task_docs']}개: "
                f"{last}-shot 키→값 정확도 {small['kv'][last]['choice']:.2f} → {large['kv'][last]['choice']:.2f}, "
                f"유도 점수 {small['induction_score']:.2f} → {large['induction_score']:.2f}.")
    ctx.progress(1, 1)
    return ChapterResult(summary, claims=claims, tables=[table, calibration_table], figures=_plots(ctx, models), samples=samples,
                         metrics=record)


CHAPTER = Chapter("3.2", T("Emergent abilities", "창발 능력"), run)
