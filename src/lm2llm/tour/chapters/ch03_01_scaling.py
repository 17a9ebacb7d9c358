"""Chapter 3.1, scaling: the GPT line from 117M to 175B parameters, counted from the architectures.

Every count comes from building the published configuration on PyTorch's meta device (no memory), so the
guide's parameter figures are checked against the architectures rather than quoted. Training compute
(6·N·D), training memory and Chinchilla-optimal tokens follow for each preset, and compute is put in
perspective with the matmul speed measured on this machine.
"""

from __future__ import annotations

from lm2llm import env
from lm2llm.models.accounting import param_report
from lm2llm.models.presets import CATALOG, PRESETS
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, Claim, T, Table
from lm2llm.tour.plots import plt

# The guide's scaling list: (preset that has the architecture, the guide's figure in parameters)
GUIDE_SCALING = [("GPT-1", "gpt-1", 117e6), ("GPT-2", "gpt2-xl", 1.5e9), ("GPT-3", "gpt3-175b", 175e9)]
GUIDE_GPT4_ESTIMATE = 1.76e12
SCALING_PRESETS = ["gpt-1", "gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-125m", "gpt3-350m",
                   "gpt3-760m", "gpt3-1.3b", "gpt3-2.7b", "gpt3-6.7b", "gpt3-13b", "gpt3-175b"]
SECONDS_PER_YEAR = 365.25 * 24 * 3600


def run(ctx: ChapterContext) -> ChapterResult:
    reports = {name: param_report(name) for name in SCALING_PRESETS}
    ctx.progress(1, 2)
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
    ctx.progress(2, 2)

    growth = reports["gpt3-175b"].total / reports["gpt-1"].total
    gpt3 = reports["gpt3-175b"]
    claims = [
        Claim(T("The guide's sizes for GPT-1 (117M), GPT-2 (1.5B) and GPT-3 (175B) match their published architectures.",
                "가이드의 GPT-1(117M), GPT-2(1.5B), GPT-3(175B) 크기는 공개된 구조와 맞는다."),
              T("counted from the configurations: " + ", ".join(f"{r[0]} {r[3]} ({r[4]})" for r in guide_rows[:3]),
                "구성에서 센 값: " + ", ".join(f"{r[0]} {r[3]} ({r[4]})" for r in guide_rows[:3])),
              all(within)),
        Claim(T("Model size grew by more than a thousandfold from GPT-1 to GPT-3.",
                "GPT-1에서 GPT-3까지 모델 크기는 천 배 넘게 커졌다."),
              T(f"{gpt3.total:,} / {reports['gpt-1'].total:,} = {growth:,.0f}×",
                f"{gpt3.total:,} / {reports['gpt-1'].total:,} = {growth:,.0f}배"),
              growth > 1000),
        Claim(T("GPT-3 was trained on fewer tokens than the compute-optimal (Chinchilla) rule asks for its size.",
                "GPT-3는 크기에 비해 Chinchilla 최적 규칙보다 적은 토큰으로 학습되었다."),
              T(f"{gpt3.tokens:.3g} tokens trained vs {gpt3.chinchilla_tokens:.3g} Chinchilla-optimal (20 per parameter)",
                f"학습 토큰 {gpt3.tokens:.3g} 대 Chinchilla 최적 {gpt3.chinchilla_tokens:.3g} (매개변수당 20)"),
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


CHAPTER = Chapter("3.1", T("Scaling: from 117M to 175B parameters", "스케일링: 117M에서 175B까지"), run)
