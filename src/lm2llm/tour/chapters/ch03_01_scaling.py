"""Chapter 3.1, scaling: the GPT line counted from the architectures, and scaling laws measured here.

Every count comes from building the published configuration on PyTorch's meta device (no memory), so the
guide's parameter figures are checked against the architectures rather than quoted. Training compute
(6·N·D), training memory and Chinchilla-optimal tokens follow for each preset, and compute is put in
perspective with the matmul speed measured on this machine.

Then the laws themselves are measured (`lm2llm scale sweep`): small GPTs on python-docs at several compute
budgets, each budget split between parameters and tokens in several ways; the fits (L(N), L(D),
iso-FLOP minima, the parametric L(N, D)) under three parameter-counting conventions, and a prediction of
the largest budget's optimal model made before it is trained.
"""

from __future__ import annotations

import math

import numpy as np

from lm2llm import env
from lm2llm.models.accounting import param_report
from lm2llm.models.presets import CATALOG, PRESETS
from lm2llm.scale.analysis import analyse
from lm2llm.scale.chinchilla import BESIROGLU_2024, HOFFMANN_2022, KAPLAN_2020
from lm2llm.scale.corpus import prose_shards
from lm2llm.scale.isoflop import bottom_parabola
from lm2llm.scale.prediction import prediction_test
from lm2llm.scale.shapes import CONVENTIONS
from lm2llm.scale.sweep import SweepSettings, budget_label, sweep
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Figure,
    T,
    Table,
    demonstration,
)
from lm2llm.tour.plots import log_x_axes, plt

# The guide's scaling list: (preset that has the architecture, the guide's figure in parameters)
GUIDE_SCALING = [("GPT-1", "gpt-1", 117e6), ("GPT-2", "gpt2-xl", 1.5e9), ("GPT-3", "gpt3-175b", 175e9)]
GUIDE_GPT4_ESTIMATE = 1.76e12
SCALING_PRESETS = ["gpt-1", "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-125m", "gpt3-350m",
                   "gpt3-760m", "gpt3-1.3b", "gpt3-2.7b", "gpt3-6.7b", "gpt3-13b", "gpt3-175b"]
SECONDS_PER_YEAR = 365.25 * 24 * 3600
# The measured sweep: budgets fitted, the held-out budget, widths (see lm2llm.scale.shapes for the shape rule) and
# the tokens-per-parameter window of the runs kept (full mode). Full mode starts at 2e11: at 1e11 the best sizes
# get a few hundred steps, still on the loss's early plateau, and the frontier bends there (its local exponent
# from 1e11 to 3e11 was half that from 3e11 to 1e12), so a law through it under-predicts larger budgets. The
# window drops the runs far from every optimum: tiny models given > 500 tokens per parameter (the costliest runs,
# since small models are overhead-bound) and large ones given < 1, a few dozen steps. The held-out budget is 1.5×
# the largest fitted one: at 2× (1.6e12) its run alone took 64 of the chapter's 193 s (idle, 5 December), over the
# full tour's 180 s for this chapter; it trains in a process of its own while the bootstrap fits run here
# (`ctx.alongside`). `lm2llm scale sweep` runs the whole grid by default (1e11–1e12 × 5 sizes, 3e12 held out).
SWEEP = {True: {"budgets": [1e10, 3e10, 1e11], "holdout": 2e11, "widths": [16, 32, 48, 64], "bootstrap": 30,
                "window": None},
         False: {"budgets": [2e11, 4e11, 8e11], "holdout": 1.2e12, "widths": [16, 32, 48, 64, 96], "bootstrap": 100,
                 "window": (1, 500)}}
CHINCHILLA_RATIO = 20
RATIO_FACTOR = 4  # the measured tokens-per-parameter ratio counts as Chinchilla-like within this factor of 20
PREDICTION_GOAL = 0.03


def counted(ctx: ChapterContext) -> ChapterResult:
    reports = {name: param_report(name) for name in SCALING_PRESETS}
    gflops = env.peak_gflops("float32")

    guide_rows, within = [], []
    for model, preset, figure in GUIDE_SCALING:
        counted = reports[preset].total
        error = counted / figure - 1
        within.append(abs(error) < 0.05)
        guide_rows.append([model, preset, f"{figure:,.0f}", f"{counted:,}", f"{error:+.1%}"])
    gpt4 = next(e for e in CATALOG if e.name == "GPT-4")
    guide_rows.append(["GPT-4", "—", f"{GUIDE_GPT4_ESTIMATE:,.0f} (estimate)", "not published", "—"])

    compute_rows = []
    for name, r in reports.items():
        years_here = r.train_flops_6nd / (gflops * 1e9) / SECONDS_PER_YEAR
        compute_rows.append([name, f"{r.total:,}", f"{r.tokens:.3g} ({r.tokens_source})", f"{r.chinchilla_tokens:.3g}",
                             f"{r.train_flops_6nd:.2e}", f"{r.train_flops_with_attention:.2e}",
                             f"{r.memory_bytes['mixed']['total'] / 2**30:,.1f}", f"{years_here:,.3g}"])

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    ordered = sorted(reports.values(), key=lambda r: r.total)
    ax.barh([r.name for r in ordered], [r.total for r in ordered], color="#4c72b0")
    for model, _preset, figure in GUIDE_SCALING:
        ax.axvline(figure, color="#dd8452", linestyle=":", linewidth=1)
        ax.text(figure, 1.01, f"guide: {model}", color="#dd8452", fontsize=7, ha="center",
                transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set_xlabel("parameters (counted on the meta device)")
    figure = ctx.save_figure(fig, "gpt_scaling", T("The GPT family, counted", "GPT 계열의 매개변수, 직접 센 값"))

    growth = reports["gpt3-175b"].total / reports["gpt-1"].total
    gpt3 = reports["gpt3-175b"]
    # Demonstrations: each compares our count of a hand-typed published configuration with a hand-typed figure
    # (the guide's, the paper's 300B tokens); they show the counting, they do not test a statement of the guide.
    claims = [
        demonstration(T("The guide's sizes for GPT-1 (117M), GPT-2 (1.5B) and GPT-3 (175B) match their published "
                        "architectures.",
                        "가이드의 GPT-1(117M), GPT-2(1.5B), GPT-3(175B) 크기는 공개된 구조와 맞는다."),
                      T("counted from the configurations as the papers give them: "
                        + ", ".join(f"{r[0]} {r[3]} ({r[4]})" for r in guide_rows[:3]),
                        "논문에 적힌 구성에서 센 값: " + ", ".join(f"{r[0]} {r[3]} ({r[4]})" for r in guide_rows[:3])),
                      all(within)),
        demonstration(T("Model size grew by more than a thousandfold from GPT-1 to GPT-3.",
                        "GPT-1에서 GPT-3까지 모델 크기는 천 배 넘게 커졌다."),
                      T(f"{gpt3.total:,} / {reports['gpt-1'].total:,} = {growth:,.0f}×",
                        f"{gpt3.total:,} / {reports['gpt-1'].total:,} = {growth:,.0f}배"),
                      growth > 1000),
        demonstration(T("GPT-3 was trained on fewer tokens than Chinchilla's 20 per parameter asks for its size.",
                        "GPT-3는 크기에 비해 Chinchilla의 매개변수당 20토큰보다 적은 토큰으로 학습되었다."),
                      T(f"{gpt3.tokens:.3g} tokens trained (the GPT-3 paper's figure) vs {gpt3.chinchilla_tokens:.3g} "
                        "Chinchilla-optimal (20 per parameter); the measured version of this claim is below",
                        f"학습 토큰 {gpt3.tokens:.3g}(GPT-3 논문의 값) 대 Chinchilla 최적 {gpt3.chinchilla_tokens:.3g} "
                        "(매개변수당 20); 이 주장의 측정판은 아래에 있다"),
                      gpt3.tokens < gpt3.chinchilla_tokens),
    ]
    tables = [
        Table(T("The guide's scaling list, counted", "가이드의 크기 목록, 직접 센 값"),
              ["model", "preset", "guide", "counted", "difference"], guide_rows),
        Table(T(f"Training cost per preset (6·N·D; years at this machine's {gflops:,.0f} GFLOP/s fp32)",
                f"프리셋별 학습 비용 (6·N·D; 이 컴퓨터의 fp32 {gflops:,.0f} GFLOP/s로 걸리는 햇수)"),
              ["preset", "parameters", "tokens", "Chinchilla tokens", "FLOPs 6ND", "FLOPs + attention",
               "train memory GiB (mixed, no activations)", "years here"], compute_rows),
    ]
    summary = T(
        f"Counted from the published configurations, GPT-3 175B has {gpt3.total:,} parameters, {growth:,.0f}× GPT-1; "
        f"training it takes {gpt3.train_flops_6nd:.2e} FLOPs, {gpt3.train_flops_6nd / (gflops * 1e9) / SECONDS_PER_YEAR:,.0f} "
        f"years on this machine. GPT-4's {GUIDE_GPT4_ESTIMATE / 1e12:.2f}T is an estimate: {gpt4.maker} has not published it.",
        f"공개된 구성에서 세면 GPT-3 175B의 매개변수는 {gpt3.total:,}개로 GPT-1의 {growth:,.0f}배다. 학습에는 "
        f"{gpt3.train_flops_6nd:.2e} FLOPs, 이 컴퓨터로 {gpt3.train_flops_6nd / (gflops * 1e9) / SECONDS_PER_YEAR:,.0f}년이 걸린다. "
        f"GPT-4의 {GUIDE_GPT4_ESTIMATE / 1e12:.2f}T는 추정치이며 {gpt4.maker}는 공개하지 않았다.",
    )
    metrics = {"counted": {name: r.total for name, r in reports.items()}, "fp32_gflops": gflops,
               "growth_gpt1_to_gpt3": growth, "presets_available": sorted(PRESETS)}
    return ChapterResult(summary, claims=claims, tables=tables, figures=[figure], metrics=metrics)




def _fmt_interval(interval: tuple[float, float] | None) -> str:
    return f"[{interval[0]:.3g}, {interval[1]:.3g}]" if interval else "—"


def _plots(ctx: ChapterContext, runs: list[dict], fits: dict) -> list[Figure]:
    a2 = fits["all"]["approach2"]
    budgets = sorted({r["budget"] for r in runs})
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(budgets)))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for color, budget in zip(colors, budgets, strict=True):
        mine = sorted((r for r in runs if r["budget"] == budget), key=lambda r: r["params"]["all"])
        n = np.array([r["params"]["all"] for r in mine], dtype=float)
        loss = np.array([r["val_loss"] for r in mine])
        ax.plot(n, loss, "o", color=color, label=f"C = {budget_label(budget)}")
        (c2, c1, c0), near = bottom_parabola(np.log(n), loss)  # the parabola approach 2 fitted
        grid = np.geomspace(n[near].min(), n[near].max(), 50)
        ax.plot(grid, c2 * np.log(grid) ** 2 + c1 * np.log(grid) + c0, "-", color=color, linewidth=1)
    ax.plot([m["params"] for m in a2["minima"]], [m["loss"] for m in a2["minima"]], "r*", markersize=10,
            label="iso-FLOP minima")
    log_x_axes(ax, "parameters N (all)", "validation loss (nats/token)")
    isoflop = ctx.save_figure(fig, "isoflop", T("Iso-FLOP curves: at each budget, loss against model size",
                                                 "등-FLOP 곡선: 예산마다 모델 크기에 따른 손실"))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    widths = sorted({r["width"] for r in runs})
    for width in widths:
        mine = sorted((r for r in runs if r["width"] == width), key=lambda r: r["flops"])
        ax.plot([r["flops"] for r in mine], [r["val_loss"] for r in mine], "o-", markersize=3,
                label=f"{mine[0]['shape']} ({mine[0]['params']['all']:,})")
    law = a2["loss_law"]
    grid = np.geomspace(budgets[0], budgets[-1] * 3, 20)
    ax.plot(grid, law["coefficient"] * grid ** law["exponent"], "k--",
            label=f"frontier L* ∝ C^{law['exponent']:.3f}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training compute C = 6ND (FLOPs)")
    ax.set_ylabel("validation loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    frontier = ctx.save_figure(fig, "loss_vs_compute", T("Loss against compute, each size a line; the frontier",
                                                         "계산량에 따른 손실, 크기마다 한 선; 최적 경계"))
    return [isoflop, frontier]


def _fit_tables(fits: dict, reference: float) -> list[Table]:
    rows = []
    for c in CONVENTIONS:
        fit = fits[c]
        k, k_int = fit["kaplan"], fit["kaplan_interval"]
        a2, a2_int = fit["approach2"], fit["approach2_interval"]
        a3, a3_int = fit["approach3"], fit["approach3_interval"]
        rows.append([c, f"{k['alpha_N']:.3f} {_fmt_interval(k_int.get('alpha_N'))}",
                     f"{k['alpha_D']:.3f} {_fmt_interval(k_int.get('alpha_D'))}",
                     f"{a2['a']:.2f} {_fmt_interval(a2_int.get('a'))}", f"{a2['b']:.2f} {_fmt_interval(a2_int.get('b'))}",
                     f"{a2['tokens_per_param']:.1f} {_fmt_interval(a2_int.get('tokens_per_param'))}",
                     f"{a3['E']:.3f}", f"{a3['A']:.4g}", f"{a3['B']:.4g}",
                     f"{a3['alpha']:.3f} {_fmt_interval(a3_int.get('alpha'))}",
                     f"{a3['beta']:.3f} {_fmt_interval(a3_int.get('beta'))}",
                     f"{a3['tokens_per_param']:.1f} {_fmt_interval(a3_int.get('tokens_per_param'))}"])
    published = []
    for name, p in (("Hoffmann et al. 2022", HOFFMANN_2022), ("Besiroglu et al. 2024", BESIROGLU_2024)):
        n, d = p.compute_optimal(reference)
        published.append([name, "—", "—", f"{p.beta / (p.alpha + p.beta):.2f}", f"{p.alpha / (p.alpha + p.beta):.2f}",
                          "—", f"{p.E}", f"{p.A}", f"{p.B}", f"{p.alpha}", f"{p.beta}", f"{d / n:.1f}"])
    published.append(["Kaplan et al. 2020 (non-embedding)", f"{KAPLAN_2020['alpha_N']}", f"{KAPLAN_2020['alpha_D']}",
                      "0.73", "0.27", "—", "—", "—", "—", "—", "—", "—"])
    columns = ["N counted as", "α_N (L(N))", "α_D (L(D))", "a: N*∝C^a", "b: D*∝C^b",
               f"D*/N* at {budget_label(reference)} (approach 2)", "E", "A", "B", "α", "β", f"D/N at {budget_label(reference)} (approach 3)"]
    return [Table(T("Fitted constants (90 % bootstrap intervals) beside the published ones",
                    "맞춘 상수(90 % 부트스트랩 구간)와 발표된 값"), columns, rows + published)]


def measured(ctx: ChapterContext) -> ChapterResult:
    """The sweep, its fits under three conventions and the prediction test."""
    plan = SWEEP[ctx.quick]
    data = prose_shards(ctx.out_dir / "sweep" / "data", docs=1500 if ctx.quick else None)
    settings = SweepSettings(data=str(data))
    record = sweep(plan["budgets"], plan["widths"], settings, ctx.out_dir / "sweep", parallel=2,
                   progress=lambda done, total: ctx.progress(done, total + 2), tokens_per_param=plan["window"])
    runs = record["runs"]
    reference = plan["budgets"][-1]
    # the prediction test (its own point fit, written down, then the held-out run) needs nothing from the bootstrap
    # fits: in full mode it trains in a process of its own while this one fits, one core each
    with ctx.alongside(prediction_test, runs, plan["holdout"], settings, ctx.out_dir / "sweep", 1) as pending:
        fits = {c: analyse(runs, c, samples=plan["bootstrap"]) for c in CONVENTIONS}
    prediction = pending.result()
    figures = _plots(ctx, runs, fits)
    tables = _fit_tables(fits, reference)
    tables.append(Table(T("Every run of the sweep", "스윕의 모든 실행"),
                        ["budget C", "shape", "N all", "N non-embedding", "N blocks", "steps", "tokens D", "D/N",
                         "val loss", "wall s", "CPU s"],
                        [[budget_label(r['budget']), r["shape"], r["params"]["all"], r["params"]["non_embedding"],
                          r["params"]["blocks"], r["steps"], r["tokens"], round(r["tokens"] / r["params"]["all"], 1),
                          round(r["val_loss"], 4), round(r["seconds"], 1), round(r.get("cpu_seconds", 0), 1)]
                         for r in runs]))
    a2 = {c: fits[c]["approach2"] for c in CONVENTIONS}
    ratio, ratio_int = a2["all"]["tokens_per_param"], fits["all"]["approach2_interval"].get("tokens_per_param")
    frontier = fits["all"]["approach2_interval"].get("frontier_exponent", (math.nan, math.nan))
    spread = a2["blocks"]["tokens_per_param"] / a2["all"]["tokens_per_param"]
    error = prediction["relative_error"]
    chosen = prediction["optimum"]["optimum_from"]
    other = next(a for a in prediction["error_by"] if a != chosen)
    chosen_ko = chosen.replace("approach", "방법")
    backtest_text = ", ".join(f"{a} {e:+.1%}" for a, e in prediction["optimum"]["backtest"].items()) or "—"
    backtest_ko = backtest_text.replace("approach", "방법")
    gpt3 = param_report("gpt3-175b")
    gpt3_ratio = gpt3.tokens / gpt3.total
    claims = [
        Claim(T("Loss falls as a power law in training compute: the best model of each budget gets steadily better.",
                "손실은 학습 계산량의 거듭제곱 법칙을 따라 줄어든다: 예산마다 가장 좋은 모델이 꾸준히 좋아진다."),
              T(f"frontier L*(C) ∝ C^{a2['all']['frontier_exponent']:.3f}, 90 % interval {_fmt_interval(frontier)} "
                f"over {len(plan['budgets'])} budgets",
                f"최적 경계 L*(C) ∝ C^{a2['all']['frontier_exponent']:.3f}, 90 % 구간 {_fmt_interval(frontier)} "
                f"(예산 {len(plan['budgets'])}개)"),
              frontier[1] < 0),
        Claim(T(f"The compute-optimal model sees about {CHINCHILLA_RATIO} tokens per parameter (Chinchilla), within "
                f"a factor of {RATIO_FACTOR} at this scale.",
                f"계산 최적 모델은 매개변수당 약 {CHINCHILLA_RATIO}토큰을 본다(Chinchilla). 이 규모에서 "
                f"{RATIO_FACTOR}배 안."),
              T(f"approach 2, all parameters, at {budget_label(reference)} FLOPs: D*/N* = {ratio:.1f} "
                f"(90 % {_fmt_interval(ratio_int)})",
                f"방법 2, 전체 매개변수, {budget_label(reference)} FLOPs에서 D*/N* = {ratio:.1f} (90 % {_fmt_interval(ratio_int)})"),
              CHINCHILLA_RATIO / RATIO_FACTOR <= ratio <= CHINCHILLA_RATIO * RATIO_FACTOR),
        Claim(T("GPT-3 saw fewer tokens per parameter than compute-optimal training asks for, by the ratio measured "
                "on this machine.",
                "이 컴퓨터에서 측정한 비율로 보아도 GPT-3는 계산 최적 학습이 요구하는 것보다 매개변수당 적은 토큰을 보았다."),
              T(f"GPT-3: {gpt3_ratio:.2f} tokens per parameter (300B tokens, the paper's figure); measured D*/N* = "
                f"{ratio:.1f}, 90 % {_fmt_interval(ratio_int)}; holds when the whole interval lies above GPT-3's ratio "
                "(an extrapolation over six orders of magnitude in size, which the interval does not cover)",
                f"GPT-3: 매개변수당 {gpt3_ratio:.2f}토큰(300B 토큰, 논문의 값); 측정한 D*/N* = {ratio:.1f}, 90 % "
                f"{_fmt_interval(ratio_int)}; 구간 전체가 GPT-3의 비율보다 위여야 성립 (크기로 여섯 자릿수를 넘는 외삽이며, "
                "구간은 그 불확실성을 담지 않는다)"),
              None if ratio_int is None else True if ratio_int[0] > gpt3_ratio else False if ratio_int[1] < gpt3_ratio
              else None),
        Claim(T("How parameters are counted moves the optimal tokens-per-parameter answer a lot at small scale.",
                "작은 규모에서는 매개변수를 세는 방식에 따라 최적 토큰/매개변수 비가 크게 달라진다."),
              T("D*/N* (approach 2): " + ", ".join(f"{c} {a2[c]['tokens_per_param']:.1f}" for c in CONVENTIONS)
                + f"; blocks-only / all = {spread:.1f}×",
                "D*/N* (방법 2): " + ", ".join(f"{c} {a2[c]['tokens_per_param']:.1f}" for c in CONVENTIONS)
                + f"; 블록만 / 전체 = {spread:.1f}배"),
              spread > 2),
        Claim(T(f"A scaling law fitted on small budgets predicts a larger budget's optimal model within "
                f"±{PREDICTION_GOAL:.0%}.",
                f"작은 예산으로 맞춘 스케일링 법칙은 더 큰 예산의 최적 모델 손실을 ±{PREDICTION_GOAL:.0%} 안에서 예측한다."),
              T(f"{prediction['shape']} at {budget_label(plan['holdout'])} FLOPs: predicted {prediction['predicted_loss']:.4f} "
                f"before training ({chosen}, chosen by its back-test error {backtest_text}), measured "
                f"{prediction['measured_loss']:.4f} ({error:+.2%}; {other} would have been "
                f"{prediction['error_by'][other]:+.2%})",
                f"{budget_label(plan['holdout'])} FLOPs의 {prediction['shape']}: 학습 전 예측 {prediction['predicted_loss']:.4f} "
                f"({chosen_ko}, 역검증 오차 {backtest_ko}로 고름), 측정 {prediction['measured_loss']:.4f} "
                f"({error:+.2%}; 다른 방법이었다면 {prediction['error_by'][other]:+.2%})"),
              abs(error) <= PREDICTION_GOAL),
    ]
    summary = T(f"Measured here: {len(runs)} runs at {', '.join(budget_label(b) for b in plan['budgets'])} FLOPs; "
                f"compute-optimal D/N = {ratio:.1f} tokens per parameter (all parameters), "
                f"N* ∝ C^{a2['all']['a']:.2f}; the held-out {budget_label(plan['holdout'])} run was predicted within {error:+.1%}.",
                f"이 컴퓨터에서 측정: {', '.join(budget_label(b) for b in plan['budgets'])} FLOPs에서 {len(runs)}개 실행; "
                f"계산 최적 D/N = 매개변수당 {ratio:.1f}토큰(전체 매개변수), N* ∝ C^{a2['all']['a']:.2f}; "
                f"제외해 둔 {budget_label(plan['holdout'])} 실행은 {error:+.1%} 안에서 예측되었다.")
    metrics = {"sweep_seconds": record["seconds"], "sweep_cpu_seconds": sum(r.get("cpu_seconds", 0) for r in runs),
               "fits": fits, "prediction": prediction, "runs": runs}
    return ChapterResult(summary, claims=claims, tables=tables, figures=figures, metrics=metrics)


def run(ctx: ChapterContext) -> ChapterResult:
    parts = [counted(ctx), measured(ctx)]
    return ChapterResult(T(" ".join(p.summary.en for p in parts), " ".join(p.summary.ko for p in parts)),
                         claims=[c for p in parts for c in p.claims], tables=[t for p in parts for t in p.tables],
                         figures=[f for p in parts for f in p.figures],
                         metrics={"counted": parts[0].metrics, "measured": parts[1].metrics})


CHAPTER = Chapter("3.1", T("Scaling: from 117M to 175B parameters, and the laws measured here",
                           "스케일링: 117M에서 175B까지, 그리고 여기서 측정한 법칙"), run)
