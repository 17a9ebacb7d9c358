"""Chapter 8, efficiency: quantization and pruning of a real LLM, each with its measured price.

SmolLM2-135M-Instruct (the registered model, read from its GGUF file by our own code) is compressed by
every method of `lm2llm.compress` and measured against its full-precision self on held-out python-docs
(English) and korean-law (Korean) text, as llama.cpp's `perplexity --kl-divergence` measures a quantized
file: perplexity, mean and 99th-percentile KL divergence from the original's next-token distribution, and
how often both rank the same token first. Beside that: the bytes the weights take stored the method's
way, and (full mode) batch-1 decoding speed of the variants whose speed is their own here: fp32, bf16,
int8, int4, w8a8 and w4a8 (int8's and int4's weights met by int8 inputs) and a pruned model (a GGUF variant runs as expanded floats, at fp32's speed; llama.cpp's speed
on the files is `benchmarks/bench_quant.py`'s). Calibration text for Wanda is python-docs documents the
evaluation never sees.

Full mode fits about a minute and a half on 2 idle cores. What costs is running SmolLM2 (about 4 ms of
one core per token) and the students' 49,152-way output layer, so it scores one 256-token window per
corpus (quick: 192), calibrates on the same 16 sequences of 128 tokens as quick mode (each calibrating
method runs every block twice over them), leaves SparseGPT to `lm2llm compress --method sparsegpt:0.5`
(its column-by-column updates alone took about half a minute of CPU), and trains each student 30 steps
on 40 windows the teacher labelled.

The original here is SmolLM2 as the package ships it: Q4_1 blocks (embedding Q8_0) expanded to float32,
not the bf16 checkpoint it was made from. Re-quantizing it to Q4_1 therefore gives back the same blocks
(the table shows KL 0), and every other figure is a cost on top of that file's own rounding.

Distillation (`compress.distill_experiment`): SmolLM2 teaches a small student of our `llama-tiny` preset;
the same student from the same initial weights, on the same tokens in the same order and steps, learns
from the tokens alone. The teacher's top-64 log-probabilities per position are computed once before
training. Quick mode is tiny (1,536 tokens seen, 6 steps; it adds about ten seconds): both students stay
near a uniform guess there, and the full mode's budget is what the comparison is about.
"""

from __future__ import annotations

import copy

from lm2llm.compress.distill_experiment import DistillSettings, distill_experiment
from lm2llm.compress.measure import CORPORA
from lm2llm.compress.pipeline import calibration_batches, measure
from lm2llm.compress.variants import Method, apply_method
from lm2llm.errors import UserError
from lm2llm.gguf.registry import resolve_run
from lm2llm.models import load_model
from lm2llm.tokenizer import load_tokenizer
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    T,
    Table,
    compare_intervals,
    demonstration,
)
from lm2llm.tour.plots import plt

NAME = "smollm2-135m-instruct"
METHODS = {"quick": ["fp32", "q8_0", "q4_1", "q4_0", "int8", "int4", "w8a8", "w4a8", "magnitude:0.5", "wanda:0.5"],
           "full": ["fp32", "bf16", "q8_0", "q4_1", "q4_0", "int8", "int4", "w8a8", "w4a8", "magnitude:0.5",
                    "wanda:0.5", "magnitude:2:4", "wanda:2:4"]}
SETTINGS = {"quick": {"windows": 1, "length": 192, "speed_tokens": 0, "calibration": 16},
            "full": {"windows": 1, "length": 256, "speed_tokens": 16, "calibration": 16}}
TIMED = ("fp32", "bf16", "int8", "int4", "w8a8", "w4a8", "wanda:0.5")  # the variants whose decoding speed is their own here
DISTILL = {"quick": DistillSettings(),
           "full": DistillSettings(windows=40, steps=30, batch_size=8, eval_windows=32, cloze_limit=100)}


def relative(rows: dict, method: str, corpus: str) -> float:
    """Perplexity of `method` over the original's, minus one: the fraction it got worse."""
    return rows[method][corpus]["perplexity"] / rows["fp32"][corpus]["perplexity"] - 1


def claims_of(rows: dict) -> list[Claim]:
    fp32 = rows["fp32"]["weight_bytes"]
    q8 = [relative(rows, "q8_0", c) for c in CORPORA]
    shrink = fp32 / rows["q8_0"]["weight_bytes"]
    q4 = [relative(rows, "q4_0", c) for c in CORPORA]
    wanda, magnitude = ([rows[m][c]["perplexity"] for c in CORPORA] for m in ("wanda:0.5", "magnitude:0.5"))
    int8_kl = max(rows["int8"][c]["kl_mean"] for c in CORPORA)
    return [
        Claim(T("8-bit quantization (Q8_0) costs under 1 % perplexity at about a quarter of the fp32 bytes",
                "8비트 양자화(Q8_0)는 fp32의 약 4분의 1 크기로 perplexity를 1 % 미만만 잃는다"),
              T(f"perplexity change: English {q8[0]:+.2%}, Korean {q8[1]:+.2%}; {shrink:.1f}× smaller; holds when both "
                "are under +1 % and it is at least 3.5× smaller",
                f"perplexity 변화: 영어 {q8[0]:+.2%}, 한국어 {q8[1]:+.2%}; {shrink:.1f}배 작음; 둘 다 +1 % 미만이고 "
                "3.5배 이상 작아야 성립"),
              max(q8) < 0.01 and shrink >= 3.5),
        Claim(T("4-bit quantization (Q4_0) costs more on Korean text than on English text",
                "4비트 양자화(Q4_0)는 영어보다 한국어 텍스트에서 더 큰 손실을 낸다"),
              T(f"perplexity change: English {q4[0]:+.1%}, Korean {q4[1]:+.1%} (SmolLM2 was trained mostly on English)",
                f"perplexity 변화: 영어 {q4[0]:+.1%}, 한국어 {q4[1]:+.1%} (SmolLM2는 주로 영어로 학습됨)"),
              q4[1] > q4[0]),
        Claim(T("At 50 % sparsity Wanda (|W|·‖x‖) beats magnitude pruning by far (the Wanda paper's finding)",
                "희소도 50 %에서 Wanda(|W|·‖x‖)가 크기 기준 가지치기보다 훨씬 낫다 (Wanda 논문의 결과)"),
              T(f"perplexity Wanda / magnitude: English {wanda[0]:.1f} / {magnitude[0]:.1f}, Korean {wanda[1]:.1f} / "
                f"{magnitude[1]:.1f} (dense {rows['fp32']['python-docs']['perplexity']:.1f} / "
                f"{rows['fp32']['korean-law']['perplexity']:.1f}); holds when Wanda is lower on both",
                f"perplexity Wanda / 크기 기준: 영어 {wanda[0]:.1f} / {magnitude[0]:.1f}, 한국어 {wanda[1]:.1f} / "
                f"{magnitude[1]:.1f} (원본 {rows['fp32']['python-docs']['perplexity']:.1f} / "
                f"{rows['fp32']['korean-law']['perplexity']:.1f}); 두 말뭉치 모두 Wanda가 낮아야 성립"),
              all(w < m for w, m in zip(wanda, magnitude, strict=True))),
        Claim(T("Weight-only int8 keeps the model's next-token distribution (mean KL under 0.01 nats)",
                "가중치 전용 int8은 다음 토큰 분포를 거의 그대로 유지한다 (평균 KL 0.01 nat 미만)"),
              T(f"largest mean KL over the two corpora: {int8_kl:.4f} nats",
                f"두 말뭉치 중 가장 큰 평균 KL: {int8_kl:.4f} nat"),
              int8_kl < 0.01),
    ]


def distillation_claims(result: dict) -> tuple[Table, list[Claim]]:
    """The two students side by side, and whether the distilled one is better on held-out text and on a task."""
    scratch, distilled = result["students"]["scratch"], result["students"]["distilled"]
    rows = [[name, f"{r['final_train_loss']:.2f}", f"{r['perplexity']:.0f}",
             "{:.0f}–{:.0f}".format(*r["perplexity_interval"]), f"{r['cloze_acc']:.1%}",
             "{:.1%}–{:.1%}".format(*r["cloze_interval"]), f"{r['train_seconds']:.1f}"]
            for name, r in result["students"].items()]
    s = result["settings"]
    table = Table(T(f"Distillation: a {s['preset']} student on SmolLM2's soft targets (T = {s['temperature']}, top-"
                    f"{s['top_k']}) against the same student on the same {result['tokens_seen']:,} tokens from scratch",
                    f"증류: SmolLM2의 소프트 타깃(T = {s['temperature']}, 상위 {s['top_k']}개)으로 배운 {s['preset']} "
                    f"학생과 같은 토큰 {result['tokens_seen']:,}개로 처음부터 배운 같은 학생"),
                  ["student", "last training loss", "held-out perplexity", "95 % interval", "python-cloze acc",
                   "95 % interval", "training s"], rows)
    gain, (low, high) = result["nll_gain"], result["nll_gain_interval"]
    mib = 2 ** 20
    how = (f"teacher run once over {result['training_tokens']:,} training tokens in {result['teacher_seconds']:.1f} s; "
           f"its top-{s['top_k']} kept in {result['teacher_target_bytes'] / mib:.2f} MiB instead of "
           f"{result['full_distribution_bytes_fp16'] / mib:.0f} MiB for the full fp16 distributions")
    how_ko = (f"교사 모델은 학습 토큰 {result['training_tokens']:,}개에 대해 한 번만 실행({result['teacher_seconds']:.1f}초); "
              f"전체 fp16 분포 {result['full_distribution_bytes_fp16'] / mib:.0f} MiB 대신 상위 {s['top_k']}개만 "
              f"{result['teacher_target_bytes'] / mib:.2f} MiB로 보관")
    claims = [
        Claim(T("A student trained on the teacher's soft targets reaches a lower held-out perplexity than the same "
                "student trained on the same tokens alone, in the same steps (Hinton et al. 2015)",
                "교사의 소프트 타깃으로 배운 학생이 같은 토큰만으로 같은 스텝 동안 배운 같은 학생보다 학습에 쓰지 않은 "
                "텍스트에서 perplexity가 낮다 (Hinton et al. 2015)"),
              T(f"perplexity distilled {distilled['perplexity']:.0f} vs scratch {scratch['perplexity']:.0f}; "
                f"NLL lower by {gain:+.3f} nats/token, paired 95 % bootstrap interval [{low:+.3f}, {high:+.3f}] over "
                f"{s['eval_windows']} held-out windows; {how}",
                f"perplexity 증류 {distilled['perplexity']:.0f}, 처음부터 {scratch['perplexity']:.0f}; NLL이 토큰당 "
                f"{gain:+.3f} nat 낮음, 학습에 쓰지 않은 창 {s['eval_windows']}개에 대한 짝지은 95 % 부트스트랩 구간 "
                f"[{low:+.3f}, {high:+.3f}]; {how_ko}"),
              True if low > 0 else False if high < 0 else None),  # a difference, no chance level: its interval is in the text
        Claim(T("The distilled student also answers a task better (python-cloze, 4 endings)",
                "증류된 학생이 과제(python-cloze, 보기 4개)도 더 잘 푼다"),
              T("accuracy distilled {:.1%} [{:.1%}, {:.1%}] vs scratch {:.1%} [{:.1%}, {:.1%}] on {} items; chance 25 %"
                .format(distilled["cloze_acc"], *distilled["cloze_interval"], scratch["cloze_acc"],
                        *scratch["cloze_interval"], distilled["cloze_n"]),
                "정확도 증류 {:.1%} [{:.1%}, {:.1%}], 처음부터 {:.1%} [{:.1%}, {:.1%}], 문항 {}개; 우연 수준 25 %"
                .format(distilled["cloze_acc"], *distilled["cloze_interval"], scratch["cloze_acc"],
                        *scratch["cloze_interval"], distilled["cloze_n"])),
              compare_intervals(distilled["cloze_interval"], scratch["cloze_interval"]),
              chance=result["cloze_chance"], interval=distilled["cloze_interval"]),
    ]
    return table, claims


def run(ctx: ChapterContext) -> ChapterResult:
    mode = "quick" if ctx.quick else "full"
    try:
        source = resolve_run(NAME)
    except UserError as exc:
        return ChapterResult(T(f"Chapter skipped: {exc}", f"장을 건너뜀: {exc}"))
    settings = SETTINGS[mode]
    original, tokenizer = load_model(source).eval(), load_tokenizer(source)
    calibration = calibration_batches(tokenizer, settings["calibration"])
    names, reports = METHODS[mode], {}

    def variants():
        for index, text in enumerate(names):
            method = Method.parse(text)
            model = original if text == "fp32" else copy.deepcopy(original)
            reports[text] = apply_method(model, method, calibration if method.needs_calibration else ())
            yield text, model, method
            ctx.progress(index + 1, len(names))

    rows = {row["method"]: row for row in measure(original, variants(), tokenizer, settings["windows"],
                                                   settings["length"], settings["speed_tokens"], TIMED)}
    mib = 2 ** 20
    table_rows = []
    for name, row in rows.items():
        csr = f"{row['csr_bytes_fp32'] / mib:.0f}" if "csr_bytes_fp32" in row else ""
        speed = row["decode_tokens_per_s"]
        table_rows.append([name, f"{row['weight_bytes'] / mib:.0f}", csr, "" if speed is None else f"{speed:.1f}",
                           *(f"{row[c]['perplexity']:.2f}" for c in CORPORA),
                           *(f"{row[c]['kl_mean']:.4f}" for c in CORPORA), f"{row['korean-law']['kl_p99']:.3f}",
                           *(f"{row[c]['top1_agreement']:.1%}" for c in CORPORA)])
    table = Table(T("SmolLM2-135M-Instruct compressed: size, speed and quality against the shipped model (Q4_1 "
                    "weights in float32)", "SmolLM2-135M-Instruct 압축: 배포된 모델(Q4_1 가중치를 float32로) 대비 크기, "
                    "속도, 품질"),
                  ["method", "weights MiB", "with CSR MiB (pruned, fp32)", "decode tok/s (batch 1)",
                   "ppl English", "ppl Korean", "KL English", "KL Korean", "KL p99 Korean", "top-1 English",
                   "top-1 Korean"], table_rows)
    fig, ax = plt.subplots(figsize=(7, 4))
    for corpus, marker in zip(CORPORA, ("o", "s"), strict=True):
        for name, row in rows.items():
            ax.scatter(row["weight_bytes"] / mib, row[corpus]["perplexity"], marker=marker,
                       color="tab:blue" if corpus == "python-docs" else "tab:red")
            ax.annotate(name, (row["weight_bytes"] / mib, row[corpus]["perplexity"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("weights (MiB)")
    ax.set_ylabel("perplexity (log scale; circles English, squares Korean)")
    ax.set_yscale("log")
    figure = ctx.save_figure(fig, "size_vs_perplexity", T("Size against perplexity, every method",
                                                          "방법별 크기 대비 perplexity"))
    claims = claims_of(rows)
    distillation = distill_experiment(original, tokenizer, DISTILL[mode])
    distill_table, distill_claims = distillation_claims(distillation)
    claims += distill_claims
    dense, csr = rows["wanda:0.5"]["weight_bytes"], rows["wanda:0.5"]["csr_bytes_fp32"]
    claims.append(demonstration(
        T("Unstructured pruning alone makes the weights no smaller: a zero stored densely takes as many bytes as any weight",
          "비정형 가지치기만으로는 가중치가 작아지지 않는다: 밀집 저장한 0도 다른 가중치와 같은 바이트를 차지한다"),
        T(f"wanda:0.5 stored densely: {dense / mib:.0f} MiB, as fp32 ({rows['fp32']['weight_bytes'] / mib:.0f} MiB); "
          f"with its pruned matrices in CSR (fp32 values, 32-bit column indices): {csr / mib:.0f} MiB",
          f"wanda:0.5 밀집 저장: {dense / mib:.0f} MiB로 fp32({rows['fp32']['weight_bytes'] / mib:.0f} MiB)와 같음; "
          f"가지친 행렬을 CSR(fp32 값, 32비트 열 인덱스)로 저장하면 {csr / mib:.0f} MiB"),
        dense == rows["fp32"]["weight_bytes"]))
    summary = T(f"SmolLM2 compressed {len(rows) - 1} ways and measured on held-out English and Korean text.",
                f"SmolLM2를 {len(rows) - 1}가지로 압축하고 학습에 쓰지 않은 영어·한국어 텍스트로 측정했다.")
    metrics = {"rows": rows, "settings": settings, "reports": reports, "distillation": distillation}
    return ChapterResult(summary, claims, [table, distill_table], [figure], [], metrics)


CHAPTER = Chapter("8", T("Efficiency", "효율화"), run, timed=True)
