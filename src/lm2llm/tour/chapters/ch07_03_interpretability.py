"""Chapter 7.3, interpretability: looking inside SmolLM2-135M-Instruct with forward hooks.

Attention maps over a Korean sentence; the logit lens (both ways) on "The capital of France is";
activation patching France → Italy, which shows where the answer is carried; TransformerLens' induction
score per head on repeated random tokens, against what uniform attention scores; and probes with
Hewitt & Liang control tasks for "does this token stand in Korean text", layer by layer. And an induction
head grown from scratch: a 2-layer attention-only model trained on repeated random tokens, whose loss on
the repeat drops suddenly (the phase change) as its best head's induction score rises (full mode; quick
mode trains a few steps to show the curves).
"""

from __future__ import annotations

import torch

from lm2llm.data import load_documents
from lm2llm.interpret import run_with_cache
from lm2llm.interpret.attention import plot_heads, token_labels
from lm2llm.interpret.induction import head_scores, plot_head_scores, repeated_random_tokens
from lm2llm.interpret.induction_training import (
    InductionConfig,
    InductionRun,
    plot_induction_run,
    train_induction,
)
from lm2llm.interpret.logit_lens import lens_logits, lens_report, plot_lens
from lm2llm.interpret.patching import patch_residual_stream, plot_patching
from lm2llm.interpret.probing import language_probe_data, probe_layers
from lm2llm.stats import wilson_interval
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    T,
    Table,
    torch_threads,
)
from lm2llm.tour.real_llm import load_real_llm

KOREAN_PROMPT = "대한민국의 수도는 서울이다."
CLEAN, CORRUPTED, ANSWERS = "The capital of France is", "The capital of Italy is", (" Paris", " Rome")


def uniform_attention(attention: list[torch.Tensor]) -> list[torch.Tensor]:
    """Causal attention spread evenly over every visible key: the score a head gets by not choosing."""
    size = attention[0].size(-1)
    uniform = torch.tril(torch.ones(size, size))
    uniform = uniform / uniform.sum(-1, keepdim=True)
    return [uniform.expand(attention[0].size(0), 1, size, size)]


INDUCTION_GOAL = 0.9  # of a perfect head's score (≈ 0.5 by the detector's definition), within the budget


def induction_run(config: InductionConfig) -> InductionRun:
    """The 2-layer attention-only model's training record (the model itself stays in the worker)."""
    with torch_threads(1):  # a model this small only waits on a second thread
        return train_induction(config)[1]


def grown_induction_head(ctx: ChapterContext, trained: InductionRun) -> tuple[list, list, list, dict]:
    """The trained model's curves, score table and (full mode) claims."""
    figure = ctx.save_figure(plot_induction_run(trained), "induction_training",
                             T("A 2-layer attention-only model on repeated random tokens: loss of each half and the "
                               "best head's induction score", "반복된 무작위 토큰으로 학습한 2층 어텐션 전용 모델: 두 절반의 "
                               "손실과 최고 헤드의 induction 점수"))
    table = Table(T("Growing an induction head: best head's score during training", "induction 헤드가 자라는 과정"),
                  ["step", "best head score", "share of a perfect head", "second-half loss (nats)"],
                  [[step, f"{score:.3f}", f"{score / trained.perfect:.2f}",
                    f"{trained.second_half_loss[step - 1]:.3f}" if step else "—"]
                   for step, score in zip(trained.score_steps, trained.best_score, strict=True)])
    claims = []
    drop, relative = trained.drop_steps(), trained.relative_score
    layer, head = trained.best_head
    if not ctx.quick:
        claims.append(Claim(
            T("An induction head forms suddenly: the loss on the repeated half stays near a uniform guess, then "
              "falls within a small part of training (a phase change).",
              "induction 헤드는 갑자기 생긴다: 반복된 절반의 손실이 균등 추측 근처에 머물다가 학습의 작은 구간 안에서 "
              "급락한다 (상전이)."),
            T(f"ln V = {trained.chance_loss:.2f}; the second half's loss went from ≥ 0.9 ln V to < 0.5 ln V in {drop} "
              f"of {len(trained.steps)} steps (from step {trained.phase_change_step()}); holds when that is under a "
              "fifth of the run",
              f"ln V = {trained.chance_loss:.2f}; 둘째 절반의 손실이 0.9 ln V 이상에서 0.5 ln V 미만으로 "
              f"{len(trained.steps)}걸음 중 {drop}걸음 만에 떨어짐 ({trained.phase_change_step()}걸음째); 전체의 "
              "5분의 1 미만이면 성립"),
            drop is not None and drop < len(trained.steps) / 5))
        claims.append(Claim(
            T(f"Within 3 minutes on a laptop CPU, some head of the model becomes an induction head scoring at least "
              f"{INDUCTION_GOAL:.0%} of what a perfect one scores by TransformerLens' definition.",
              f"노트북 CPU에서 3분 안에 모델의 한 헤드가, TransformerLens 정의로 완벽한 헤드 점수의 "
              f"{INDUCTION_GOAL:.0%} 이상인 induction 헤드가 된다."),
            T(f"best head L{layer}H{head}: {trained.best_score[-1]:.3f}; a perfect head: {trained.perfect:.3f} (the share "
              f"of positions with an earlier copy, ≈ 0.5: the first half has nothing to find); ratio "
              f"{relative:.2f}; untrained {trained.best_score[0]:.3f} (chance); {len(trained.steps)} steps in "
              f"{trained.cpu_seconds:.0f} CPU-seconds ({trained.seconds:.0f} s wall here); holds at ≥ "
              f"{INDUCTION_GOAL:.0%} within 180 CPU-seconds (on idle cores the wall time is at most that)",
              f"최고 헤드 L{layer}H{head}: {trained.best_score[-1]:.3f}; 완벽한 헤드: {trained.perfect:.3f} (앞서 나온 "
              f"같은 토큰이 있는 위치의 비율, ≈ 0.5: 첫 절반에는 찾을 것이 없음); 비율 {relative:.2f}; "
              f"학습 전 {trained.best_score[0]:.3f} (우연 수준); {len(trained.steps)}걸음, CPU {trained.cpu_seconds:.0f}초 "
              f"(이 컴퓨터의 실제 경과 {trained.seconds:.0f}초); CPU 180초 안에 {INDUCTION_GOAL:.0%} 이상이면 성립 "
              "(한가한 코어에서는 경과 시간이 이보다 짧음)"),
            relative >= INDUCTION_GOAL and trained.cpu_seconds < 180, chance=trained.best_score[0] / trained.perfect))
    metrics = {"induction_training": {"best_score": trained.best_score, "score_steps": trained.score_steps,
                                      "perfect": trained.perfect, "relative": relative, "drop_steps": drop,
                                      "phase_change_step": trained.phase_change_step(), "seconds": trained.seconds,
                                      "cpu_seconds": trained.cpu_seconds, "steps": len(trained.steps)}}
    return [figure], [table], claims, metrics


def run(ctx: ChapterContext) -> ChapterResult:
    config = InductionConfig(steps=20, score_every=10, max_seconds=2) if ctx.quick else InductionConfig()
    # the grown model trains on one core (full mode: in its own process) while SmolLM2 is examined on the other
    with ctx.alongside(induction_run, config) as training, torch_threads(1):
        loaded = load_real_llm(ctx)
        examined = loaded if isinstance(loaded, ChapterResult) else examine_real_llm(ctx, *loaded)
    grown_figures, grown_tables, grown_claims, grown_metrics = grown_induction_head(ctx, training.result())
    return ChapterResult(examined.summary, claims=[*grown_claims, *examined.claims],
                         tables=[*examined.tables[:1], *grown_tables, *examined.tables[1:]],
                         figures=[*grown_figures, *examined.figures], samples=examined.samples,
                         metrics={**grown_metrics, **examined.metrics})


def examine_real_llm(ctx: ChapterContext, model: torch.nn.Module, tokenizer) -> ChapterResult:
    """Attention, the logit lens, patching, induction heads and probes on SmolLM2."""
    n_layer = model.config.n_layer
    figures, tables, claims = [], [], []

    # attention over a Korean sentence
    ids = tokenizer.encode(KOREAN_PROMPT)
    trace = run_with_cache(model, torch.tensor([ids]), attention=True)
    labels = token_labels(tokenizer, ids)
    for layer in (0, n_layer - 1):
        figures.append(ctx.save_figure(plot_heads(trace, labels, layer, f"{KOREAN_PROMPT}  layer {layer}",
                                                  heads=list(range(min(4, model.config.n_head)))),
                                       f"attention_layer{layer:02d}",
                                       T(f"Attention of layer {layer}, first heads", f"{layer}층 앞쪽 헤드의 어텐션")))
    ctx.progress(1, 6)

    # logit lens
    clean_ids = tokenizer.encode(CLEAN)
    trace = run_with_cache(model, torch.tensor([clean_ids]))
    answer_id = tokenizer.encode(ANSWERS[0])[0]
    reports = {m: lens_report(model, trace, m, answer_id=answer_id) for m in ("renorm", "cached_scale")}
    last_gap = max(float((lens_logits(model, trace, m)[-1] - trace.logits).abs().max()) for m in reports)
    lens_table = Table(T(f"Logit lens on {CLEAN!r}: rank of {ANSWERS[0]!r} per residual point (0 = top)",
                         f"{CLEAN!r}의 로짓 렌즈: 층마다 {ANSWERS[0]!r}의 순위 (0 = 1위)"),
                       ["residual point", "top token (renorm)", "rank (renorm)", "p (renorm)", "rank (cached scale)",
                        "p (cached scale)"],
                       [[layer, repr(tokenizer.decode([reports["renorm"].top_ids[layer][0]])),
                         reports["renorm"].answer_rank[layer], f"{reports['renorm'].answer_prob[layer]:.3g}",
                         reports["cached_scale"].answer_rank[layer], f"{reports['cached_scale'].answer_prob[layer]:.3g}"]
                        for layer in range(n_layer + 1)])
    figures.append(ctx.save_figure(plot_lens(model, trace, token_labels(tokenizer, clean_ids),
                                             lambda i: token_labels(tokenizer, [i])[0]), "logit_lens",
                                   T("Logit lens (re-normalised): top token per layer and position",
                                     "로짓 렌즈 (재정규화): 층과 위치마다 1위 토큰")))
    first_top = reports["renorm"].first_top_layer()
    claims.append(Claim(
        T("The answer becomes the lens's top token only in the last third of the layers.",
          "정답은 마지막 3분의 1 층에 가서야 로짓 렌즈의 1위 토큰이 된다."),
        T(f"{ANSWERS[0]!r} stays top from residual point {first_top} of {n_layer} on; holds from {2 * n_layer / 3:.0f}; "
          f"the last point equals the model's logits to {last_gap:.1e} (both lenses)",
          f"{ANSWERS[0]!r}는 {n_layer}개 중 {first_top}번째 지점부터 1위; {2 * n_layer / 3:.0f} 이상이면 성립; "
          f"마지막 지점은 모델 logit과 {last_gap:.1e} 이내로 같음 (두 렌즈 모두)"),
        first_top is not None and first_top >= 2 * n_layer / 3))
    ctx.progress(2, 6)

    # activation patching
    corrupted_ids = tokenizer.encode(CORRUPTED)
    good, bad = (tokenizer.encode(a)[0] for a in ANSWERS)
    points = list(range(0, n_layer + 1, 3 if ctx.quick else 1))
    patching = patch_residual_stream(model, clean_ids, corrupted_ids, good, bad, points)
    effect = torch.tensor(patching.effect)
    subject = next(i for i, (a, b) in enumerate(zip(clean_ids, corrupted_ids, strict=True)) if a != b)
    moved = next((point for row, point in enumerate(points) if effect[row, -1] > effect[row, subject]), None)
    figures.append(ctx.save_figure(plot_patching(patching, token_labels(tokenizer, clean_ids)), "patching",
                                   T("Activation patching, France → Italy: normalised logit-difference effect",
                                     "활성 패칭, France → Italy: 정규화한 logit 차 효과")))
    claims.append(Claim(
        T("Which country was named is carried at the country's token through the first half of the network and "
          "moves to the last token only after it.",
          "어느 나라였는지는 네트워크 앞 절반 동안 나라 이름 토큰에 실려 있다가 그 뒤에야 마지막 토큰으로 옮겨 간다."),
        T(f"logit diff clean {patching.clean_diff:.2f}, corrupted {patching.corrupted_diff:.2f}; patching the country "
          f"token restores {effect[0, subject]:.2f} at layer 0; the last token's effect first exceeds it at layer "
          f"{moved} of {n_layer}; holds when that is past {n_layer // 2}",
          f"logit 차: 원본 {patching.clean_diff:.2f}, 오염 {patching.corrupted_diff:.2f}; 0층에서 나라 토큰 패칭은 "
          f"{effect[0, subject]:.2f} 회복; 마지막 토큰의 효과가 {n_layer}층 중 {moved}층에서 처음 앞섬; "
          f"{n_layer // 2}층 이후면 성립"),
        moved is not None and moved > n_layer // 2 and float(effect[0, subject]) > 0.9))
    ctx.progress(3, 6)

    # induction heads
    random_ids = repeated_random_tokens(model.config.vocab_size, 20 if ctx.quick else 40, 4, seed=0,
                                        prefix=tokenizer.eos_id, low=len(tokenizer.special_tokens))
    attention = run_with_cache(model, random_ids, attention=True).attention
    scores = head_scores(attention, random_ids)
    baseline = float(head_scores(uniform_attention(attention), random_ids))
    best = int(scores.argmax())
    best_layer, best_head = divmod(best, scores.size(1))
    figures.append(ctx.save_figure(plot_head_scores(scores, "induction score (TransformerLens head detector)"),
                                   "induction_heads", T("Induction score per head", "헤드별 induction 점수")))
    strong = int((scores > 0.2).sum())
    claims.append(Claim(
        T("Some heads of a pre-trained LLM are induction heads: on repeated random tokens they look at the token "
          "after the earlier copy far more than attention spread evenly does.",
          "사전학습된 LLM의 일부 헤드는 induction 헤드다: 반복된 무작위 토큰에서, 앞서 나온 같은 토큰의 다음 "
          "토큰을 고르게 퍼진 어텐션보다 훨씬 많이 본다."),
        T(f"best head L{best_layer}H{best_head}: {float(scores.max()):.3f}; uniform attention: {baseline:.3f} (chance); "
          f"a perfect head ≈ 0.5; {strong} heads above 0.2; holds above 5× chance",
          f"최고 헤드 L{best_layer}H{best_head}: {float(scores.max()):.3f}; 균일 어텐션: {baseline:.3f} (우연 수준); "
          f"완벽한 헤드 ≈ 0.5; 0.2 넘는 헤드 {strong}개; 우연의 5배를 넘으면 성립"),
        float(scores.max()) > 5 * baseline, chance=baseline))
    ctx.progress(4, 6)

    # probing with control tasks
    count = 5 if ctx.quick else 16
    korean = [t for t in load_documents("korean-law")][:count]
    english = load_documents("python-docs", limit=count + 200)[200:200 + count]
    resid, lang_labels, types = language_probe_data(model, tokenizer, korean, english, max_tokens=40)
    probe_points = list(range(0, n_layer + 1, 10 if ctx.quick else 2))
    probes = probe_layers(resid[probe_points], lang_labels, types)
    n_test = int(lang_labels.numel() * 0.3)
    tables.append(Table(T("Probe for 'this token stands in Korean text', per layer, against its control task",
                          "'이 토큰은 한국어 글 안에 있다' 프로브: 층마다, 통제 과제와 비교"),
                        ["residual point", "probe accuracy", "95 % CI", "control accuracy", "selectivity"],
                        [[p, f"{a:.3f}", "{:.3f}–{:.3f}".format(*wilson_interval(round(a * n_test), n_test)),
                          f"{c:.3f}", f"{a - c:+.3f}"]
                         for p, a, c in zip(probe_points, probes.accuracy, probes.control, strict=True)]))
    best_probe = max(range(len(probe_points)), key=lambda i: probes.selectivity[i])
    low, _ = wilson_interval(round(probes.accuracy[best_probe] * n_test), n_test)
    _, control_high = wilson_interval(round(probes.control[best_probe] * n_test), n_test)
    claims.append(Claim(
        T("A linear probe reads the language of the surrounding text from the residual stream better than its "
          "control task can be memorised (Hewitt & Liang selectivity).",
          "선형 프로브는 주변 글의 언어를 잔차 스트림에서 읽어 내며, 그 정확도는 통제 과제를 외워서 얻는 정확도보다 "
          "높다 (Hewitt & Liang의 선택성)."),
        T(f"best selectivity {probes.selectivity[best_probe]:+.3f} at point {probe_points[best_probe]}: probe "
          f"{probes.accuracy[best_probe]:.3f} (CI from {low:.3f}), control {probes.control[best_probe]:.3f} (CI to "
          f"{control_high:.3f}); majority guess {probes.majority:.3f}; n_test={n_test}; holds when the intervals part",
          f"최고 선택성 {probes.selectivity[best_probe]:+.3f} ({probe_points[best_probe]}번째 지점): 프로브 "
          f"{probes.accuracy[best_probe]:.3f} (구간 하한 {low:.3f}), 통제 {probes.control[best_probe]:.3f} (구간 상한 "
          f"{control_high:.3f}); 다수 추측 {probes.majority:.3f}; 시험 {n_test}개; 두 구간이 갈라지면 성립"),
        low > control_high, chance=probes.majority,
        interval=wilson_interval(round(probes.accuracy[best_probe] * n_test), n_test)))
    ctx.progress(6, 6)
    summary = T(f"{ANSWERS[0]!r} tops the logit lens from point {first_top}/{n_layer}; the country moves to the last "
                f"token at layer {moved}; best induction head {float(scores.max()):.2f} vs {baseline:.3f} uniform.",
                f"{ANSWERS[0]!r}는 {first_top}/{n_layer} 지점부터 로짓 렌즈 1위; 나라 정보는 {moved}층에서 마지막 토큰으로 "
                f"옮겨 감; 최고 induction 헤드 {float(scores.max()):.2f} (균일 {baseline:.3f}).")
    return ChapterResult(summary, claims=claims, tables=[lens_table, *tables], figures=figures,
                         metrics={"lens_rank": {m: r.answer_rank for m, r in reports.items()},
                                  "lens_last_gap": last_gap,
                                  "first_top_layer": first_top, "patching_effect": patching.effect,
                                  "patching_moved_layer": moved, "induction_scores": scores.tolist(),
                                  "induction_uniform": baseline, "probe_probe_points": probe_points,
                                  "probe_accuracy": probes.accuracy, "probe_control": probes.control})


CHAPTER = Chapter("7.3", T("Interpretability", "해석 가능성"), run)
