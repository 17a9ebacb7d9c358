"""Chapter 0, your machine: what the later chapters run on, and how fast it does matrix math.

Every later speed figure (tokens/s, MFU) is read against the matmul throughput measured here.
"""

from __future__ import annotations

from lm2llm import env
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, Claim, T, Table
from lm2llm.tour.plots import plt


def run(ctx: ChapterContext) -> ChapterResult:
    with ctx.all_cores():  # the peak later chapters' MFU is read against: every core, as training uses it
        report = env.collect(measure_seconds=0.5 if ctx.quick else 2.0)
    ctx.progress(1, 2)
    facts = Table(
        T("This machine", "이 컴퓨터"),
        ["what", "value"],
        [
            ["CPU", report.cpu],
            ["cores / torch threads", f"{report.cores} / {report.threads}"],
            ["device", report.device],
            ["torch", report.torch],
            ["bf16", report.bf16_supported],
        ]
        + [[f"matmul {m.dtype} GFLOP/s ({m.size}²)", round(m.gflops, 1)] for m in report.matmul]
        + [[f"data-sheet peak {dtype} GFLOP/s", peak] for dtype, peak in report.datasheet.items()],
    )
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.barh([m.dtype for m in report.matmul], [m.gflops for m in report.matmul], color=["#4c72b0", "#dd8452"])
    ax.set_xlabel(f"GFLOP/s (best {report.matmul[0].size}×{report.matmul[0].size} matmul)")
    figure = ctx.save_figure(fig, "matmul", T("Measured matmul throughput", "측정한 행렬곱 처리량"))
    claims = []
    fp32, bf16 = report.peak_gflops("float32"), report.peak_gflops("bfloat16")
    if fp32 and bf16:
        ratio = bf16 / fp32
        claims.append(
            Claim(
                T(
                    "Lower-precision arithmetic (bf16) makes the same matrix math faster on this machine.",
                    "낮은 정밀도(bf16) 연산은 이 컴퓨터에서 같은 행렬곱을 더 빠르게 한다.",
                ),
                T(f"bf16 {bf16:,.0f} vs fp32 {fp32:,.0f} GFLOP/s: {ratio:.2f}×", f"bf16 {bf16:,.0f} 대 fp32 {fp32:,.0f} GFLOP/s: {ratio:.2f}배"),
                ratio > 1.0,
            )
        )
    ctx.progress(2, 2)
    summary = T(
        f"{report.cores} cores, torch {report.torch} on {report.device}; fp32 matmul at {fp32:,.0f} GFLOP/s.",
        f"코어 {report.cores}개, {report.device}에서 torch {report.torch}; fp32 행렬곱 {fp32:,.0f} GFLOP/s.",
    )
    return ChapterResult(summary, claims=claims, tables=[facts], figures=[figure], metrics=env.as_dict(report))


CHAPTER = Chapter("0", T("Your machine", "내 컴퓨터"), run, timed=True)
