"""Chapter 2.2, BERT vs GPT: the same Transformer pieces, pointed at different jobs.

A tiny BERT (bidirectional encoder, masked-LM) and a tiny GPT (causal decoder, next-token) of the same
width and depth are pre-trained for the same number of steps on the same standard-library docstrings,
then each is fine-tuned with the same budget to tell which package a docstring comes from. Measured:
how well each fills in a blank (top-1 and cross-entropy, next to a guess from token frequencies alone),
whether each can continue a text, and classification accuracy and time. With a local copy of NSMC (full
mode), both are also fine-tuned on Korean movie-review sentiment.

Masked LM's first plateau. Built as published (post-LN, learned positions, init std 0.02, 15 % masking), a
BERT this small stays for well over a thousand steps on masked LM's first plateau, predicting token
frequencies at every blank: the full-mode 1,500 steps at lr 1e-3 left its blank top-1 at 0.035 against the
frequency guess's 0.033, and 4,000 steps, higher learning rates, 40 % masking, larger initialisations, other
head counts, shorter windows, a 512-token vocabulary and transformers' BertForMaskedLM trained the same way
all stayed there. The training path is not at fault: where a blank's neighbours name it, the same BERT fills
96 % of blanks after 200 steps (tests/test_bert.py). So the chapter pre-trains its BERT with
`models.bert.plateau_recipe`, four options of `BertConfig` from the literature, at lr 1e-2:

- ALiBi positions (Press et al. 2022): each head subtracts slope × distance from its attention scores, so
  a blank's neighbours are the nearest keys from the first step; a learned position table must first learn
  which positions are adjacent, and at a blank BERT holds nothing but `<|mask|>` until it has.
- initialisation std 1/√d (0.125 at width 64) instead of 0.02: products of std-0.02 matrices are tiny and so
  are their gradients, the small-product saddle the plateau is made of.
- pre-LN (Xiong et al. 2020): the residual path passes gradients to the first layer untouched, which makes
  the high learning rate stable.
- 30 % of tokens masked instead of 15 % (Wettig et al. 2023, "Should You Mask 15 % in Masked Language
  Modeling?"): twice the blanks, twice the training signal per step.

An ablation on the quick corpus (plain AdamW, scored at `<|mask|>` only) found no single one of them enough
in 600 steps; the four together at lr 1e-2 left the plateau within 1,500 (top-1 0.061 against a frequency
guess of at most 0.041). The GPT is gpt-tiny as it is (pre-LN, learned positions), at its own learning rate
(3e-3). In full mode both pre-train and fine-tune in bf16 autocast, faster there on this CPU. Beware a trap: BERT's own validation
loss counts the 10 % of hidden tokens left unchanged, which it learns to copy, so that loss falls below the
frequency guess even on the plateau; only the `<|mask|>` positions are scored here (and the copying is
reported). Should BERT still be on the plateau, the two comparisons that rest on its pre-training (filling
blanks, classifying) are inconclusive, not ✓ or ✗: an encoder there is a broken baseline.
Every score carries its 95 % Wilson interval next to its chance level (token frequencies for blanks, one
class in four for packages); the classification claim needs both intervals clear of 1.5 × chance.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from lm2llm.classify.data import docstring_families, nsmc, nsmc_files
from lm2llm.classify.model import SequenceClassifier
from lm2llm.classify.train import ClassifyConfig, classify_trainer, evaluate_classifier, fine_tune
from lm2llm.data.shards import ShardWriter, TokenShards
from lm2llm.errors import UserError
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import build_model, config_for
from lm2llm.models.bert import plateau_recipe
from lm2llm.stats import wilson_interval
from lm2llm.tokenizer.chat import CLS_TOKEN, ENCODER_TOKENS, MASK_TOKEN
from lm2llm.tokenizer.hf_bpe import BPETokenizer
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
from lm2llm.training.config import fine_tuning
from lm2llm.training.data import ShardBatches
from lm2llm.training.masking import mask_tokens
from lm2llm.training.objectives import IGNORE_INDEX, CausalLM, MaskedLM
from lm2llm.training.run import masked_lm_batches
from lm2llm.training.trainer import Trainer

BERT_LR = 1e-2  # the recipe's peak learning rate: pre-LN trains stably at it (Xiong et al. 2020)
GPT_LR = 3e-3  # gpt-tiny's: in full mode its blank top-1 was 0.159 at 3e-3 and 0.154 at 1e-3


def dtype(quick: bool) -> str:
    """bf16 autocast (fp32 weights; scores are computed in fp32) at full mode's block of 64, where this CPU runs
    it faster; fp32 at quick mode's 32, where it is not."""
    return "float32" if quick else "bfloat16"


def pretrain(family: str, shards: TokenShards, tokenizer: BPETokenizer, block: int, steps: int, lr: float,
             precision: str):
    """A model of `family` trained with its own objective on the shared shards; returns it and its result.

    bert-tiny and gpt-tiny have the same width, depth and heads. BERT is built with `plateau_recipe` (ALiBi,
    pre-LN, init std d^-1/2, 30 % masking; see the module docstring); its windows start with `<|cls|>`, as
    `lm2llm train --model bert` prepares them. `precision`: the trainer's dtype (see `dtype`).
    """
    torch.manual_seed(0)
    options = plateau_recipe(config_for("bert", "bert-tiny").d_model) if family == "bert" else {}
    model = build_model(family, f"{family}-tiny", vocab_size=tokenizer.vocab_size, context_length=block, **options)
    data = ShardBatches(shards, block_size=block, batch_size=16, seed=0, eval_batches=4)
    objective = CausalLM()
    if family == "bert":
        data = masked_lm_batches(data, tokenizer, seed=0, rate=model.config.mask_rate)
        objective = MaskedLM()
    cfg = fine_tuning(steps, lr, batch_size=16, weight_decay=0.01, eval_every=steps, eval_batches=4,
                      dtype=precision)
    result = Trainer(model, objective, data, cfg).fit()
    return model.eval(), result


@torch.no_grad()
def blank_scores(bert, gpt, windows: torch.Tensor, tokenizer: BPETokenizer, frequencies: torch.Tensor) -> dict:
    """Top-1 accuracy and cross-entropy at the same hidden positions: BERT sees both sides of `<|mask|>`, GPT
    only the left. `frequencies` (training-token counts) give the score of a guess that reads no context."""
    special = [tokenizer.fast.token_to_id(t) for t in tokenizer.special_tokens]
    mask_id = tokenizer.fast.token_to_id(MASK_TOKEN)
    bert_windows = windows.clone()
    bert_windows[:, 0] = tokenizer.fast.token_to_id(CLS_TOKEN)  # BERT's inputs start with [CLS], as in pre-training
    inputs, targets = mask_tokens(bert_windows, mask_id=mask_id, vocab_size=tokenizer.vocab_size, special_ids=special,
                                  generator=torch.Generator().manual_seed(5))
    blanks = (inputs == mask_id) & (targets != IGNORE_INDEX)
    blanks[:, 0] = False  # GPT has nothing to its left at position 0
    answers = windows[blanks]
    gpt_logits, bert_logits = gpt(windows)[0], bert(inputs)[0]
    predicted = {"bert": bert_logits[blanks], "gpt": torch.cat([gpt_logits[:, :1], gpt_logits[:, :-1]], dim=1)[blanks]}
    scores = {family: {"top1": float((logits.argmax(-1) == answers).float().mean()),
                       "nats": float(F.cross_entropy(logits, answers))} for family, logits in predicted.items()}
    probabilities = (frequencies + 1) / (frequencies + 1).sum()  # add-one: every token gets some probability
    scores["frequencies"] = {"top1": float((answers == frequencies.argmax()).float().mean()),
                             "nats": float(-probabilities[answers].log().mean())}
    # the chosen tokens left as they were (10 %): BERT's own validation loss counts them, and copying the input
    # scores there without reading any context, so that loss can fall while the blanks stay at the frequencies
    kept = (inputs == bert_windows) & (targets != IGNORE_INDEX)
    kept_top1 = float((bert_logits[kept].argmax(-1) == bert_windows[kept]).float().mean()) if kept.any() else 0.0
    return {**scores, "blanks": int(blanks.sum()), "kept": {"top1": kept_top1, "n": int(kept.sum())}}


@torch.no_grad()
def fill_example(bert, gpt, tokenizer: BPETokenizer, ids: list[int], position: int) -> str:
    masked = [tokenizer.fast.token_to_id(CLS_TOKEN), *ids]  # BERT reads [CLS] first, as in pre-training
    masked[position + 1] = tokenizer.fast.token_to_id(MASK_TOKEN)
    bert_top = bert(torch.tensor([masked]))[0][0, position + 1].topk(3).indices.tolist()
    gpt_top = gpt(torch.tensor([ids[:position]]))[0][0, -1].topk(3).indices.tolist()
    answer = tokenizer.decode([ids[position]])
    blank = " ___" if answer.startswith(" ") else "___"  # byte-level BPE tokens carry their leading space
    shown = tokenizer.decode(ids[:position]) + blank + tokenizer.decode(ids[position + 1:])
    words = lambda top: ", ".join(repr(tokenizer.decode([t])) for t in top)  # noqa: E731
    return (f"{shown}\n  answer: {answer!r}\n  BERT (both sides): {words(bert_top)}"
            f"\n  GPT (left only):   {words(gpt_top)}")


def classify_both(backbones: dict, tokenizer: BPETokenizer, train, test, steps: int, block: int, precision: str) -> dict:
    out = {}
    for family, backbone in backbones.items():
        model = SequenceClassifier(copy.deepcopy(backbone), train.names, dropout=0.1)
        cfg = ClassifyConfig(block_size=block, seed=0, trainer=classify_trainer(steps, 1e-3, warmup_steps=steps // 10,
                                                                                 eval_every=steps, dtype=precision))
        start = time.perf_counter()
        # the trainer's own validation loss is not reported: a few texts, not the whole test set scored twice
        fine_tune(model, tokenizer, train, test.subset(range(min(len(test), 64))), cfg)
        seconds = time.perf_counter() - start
        out[family] = {**evaluate_classifier(model, tokenizer, test, block), "train_seconds": seconds}
    return out


def run(ctx: ChapterContext) -> ChapterResult:
    quick = ctx.quick
    block, pre_steps, ft_steps = (32, 200, 100) if quick else (64, 1500, 400)
    precision = dtype(quick)
    labelled = docstring_families(n_families=4, per_family=150 if quick else None)
    train, test = labelled.split(0.25, seed=0)
    tokenizer = BPETokenizer.train(train.texts, 512 if quick else 2000, extra_special_tokens=ENCODER_TOKENS)
    ctx.progress(1, 6)
    with tempfile.TemporaryDirectory() as tmp:
        stream: list[int] = []
        for text in train.texts:  # pre-training sees only training docstrings, never the test ones
            stream += tokenizer.encode(text) + [tokenizer.eos_id]
        writer = ShardWriter(Path(tmp), tokenizer.vocab_size)
        cut = len(stream) * 9 // 10
        writer.write("train", stream[:cut])
        writer.write("val", stream[cut:])
        writer.close()
        shards = TokenShards(tmp)
        bert, bert_run = pretrain("bert", shards, tokenizer, block, pre_steps, BERT_LR, precision)
        ctx.progress(2, 6)
        gpt, gpt_run = pretrain("gpt", shards, tokenizer, block, pre_steps, GPT_LR, precision)
        ctx.progress(3, 6)
        val = torch.tensor(stream[cut:][: (len(stream) - cut) // block * block]).view(-1, block)[:64]
    frequencies = torch.bincount(torch.tensor(stream[:cut]), minlength=tokenizer.vocab_size).float()
    frequencies[[tokenizer.fast.token_to_id(t) for t in tokenizer.special_tokens]] = 0  # never a blank's answer
    blank = blank_scores(bert, gpt, val, tokenizer, frequencies)
    bert_blank, gpt_blank, n_blanks = blank["bert"]["top1"], blank["gpt"]["top1"], blank["blanks"]
    blank_iv = {family: wilson_interval(blank[family]["top1"] * n_blanks, n_blanks)
                for family in ("bert", "gpt", "frequencies")}
    # masked LM's first plateau: predicting token frequencies, whatever the context. Left only when BERT's blank
    # top-1 interval lies wholly above the frequency guess's and its cross-entropy is 0.1 nats or more below
    bert_on_plateau = not (compare_intervals(blank_iv["bert"], blank_iv["frequencies"])
                           and blank["bert"]["nats"] < blank["frequencies"]["nats"] - 0.1)

    example_ids = [tokenizer.encode(t)[:block - 1] for t in test.texts if len(tokenizer.encode(t)) >= 12][:3]
    samples = [Sample(T("Fill in the blank", "빈칸 채우기"), fill_example(bert, gpt, tokenizer, ids, len(ids) // 2))
               for ids in example_ids]
    prompt = tokenizer.encode("Return the")
    gpt_tokens = generate_ids(gpt, [prompt], SamplingConfig(max_new_tokens=16, temperature=0))[0].token_ids
    try:
        generate_ids(bert, [prompt], SamplingConfig(max_new_tokens=16, temperature=0))
        bert_generates = True
    except UserError:
        bert_generates = False
    samples.append(Sample(T("Continuation (GPT, greedy)", "이어 쓰기 (GPT, greedy)"),
                          "Return the" + tokenizer.decode(gpt_tokens)))
    ctx.progress(4, 6)

    backbones = {"bert": bert, "gpt": gpt}
    scores = classify_both(backbones, tokenizer, train, test, ft_steps, block, precision)
    ctx.progress(5, 6)
    korean = None
    if not quick and nsmc_files() is not None:
        ko_train, ko_test = nsmc(limit=3000)
        korean = classify_both(backbones, tokenizer, ko_train, ko_test.subset(range(min(1000, len(ko_test)))),
                               ft_steps, block, precision)

    chance = 1 / len(labelled.names)
    n_test = len(test)
    class_iv = {family: wilson_interval(scores[family]["accuracy"] * n_test, n_test) for family in ("bert", "gpt")}

    def with_iv(value: float, iv: tuple[float, float]) -> str:
        return f"{value:.3f} [{iv[0]:.3f}, {iv[1]:.3f}]"
    rows = [
        ["structure", "encoder only", "decoder only"],
        ["attention", "bidirectional (sees all tokens)", "causal (sees earlier tokens)"],
        ["pre-training objective", f"masked LM ({round(100 * bert.config.mask_rate)} % blanks)", "next token"],
        ["positions", "ALiBi (distance penalty per head)", "learned table"],
        ["norm placement", "pre-LN", "pre-LN"],
        ["initialisation std", round(bert.config.init_std, 3), gpt.config.init_std],
        ["peak learning rate", BERT_LR, GPT_LR],
        ["parameters", bert.num_params(), gpt.num_params()],
        ["pre-training steps (16 × block tokens each)", bert_run.steps, gpt_run.steps],
        ["pre-training seconds", round(bert_run.seconds, 2), round(gpt_run.seconds, 2)],
        ["final pre-training val loss (own objective)", round(bert_run.evals[-1]["val_loss"], 3),
         round(gpt_run.evals[-1]["val_loss"], 3)],
        [f"blank filled correctly (top-1, {n_blanks} blanks; token frequencies alone: "
         f"{blank['frequencies']['top1']:.3f})", round(bert_blank, 3), round(gpt_blank, 3)],
        [f"cross-entropy at the blanks, nats (token frequencies alone: {blank['frequencies']['nats']:.2f})",
         round(blank["bert"]["nats"], 3), round(blank["gpt"]["nats"], 3)],
        ["generates text left to right", "yes" if bert_generates else "no (no next-token interface)",
         f"yes ({len(gpt_tokens)} tokens)"],
        [f"docstring → package accuracy ({len(labelled.names)} classes, chance {chance:.2f})",
         round(scores["bert"]["accuracy"], 3), round(scores["gpt"]["accuracy"], 3)],
        ["docstring → package macro-F1", round(scores["bert"]["macro_f1"], 3), round(scores["gpt"]["macro_f1"], 3)],
        ["fine-tuning seconds", round(scores["bert"]["train_seconds"], 2), round(scores["gpt"]["train_seconds"], 2)],
    ]
    if korean:
        rows.append(["NSMC sentiment accuracy (Korean)", round(korean["bert"]["accuracy"], 3),
                     round(korean["gpt"]["accuracy"], 3)])
    table = Table(T("BERT vs GPT, measured (same width, depth, data and steps)",
                    "BERT 대 GPT, 측정값 (같은 폭·깊이·데이터·스텝)"), ["", "BERT", "GPT"], rows)
    confusion = Table(T("Confusion matrices on held-out docstrings (rows: true package)",
                        "보류한 docstring의 혼동 행렬 (행: 실제 패키지)"),
                      ["model", "true", *labelled.names],
                      [[family, name, *row] for family in ("bert", "gpt")
                       for name, row in zip(labelled.names, scores[family]["confusion"], strict=True)])

    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    axes[0].bar(["BERT", "GPT"], [bert_blank, gpt_blank], color=["#4c72b0", "#dd8452"])
    axes[0].axhline(blank["frequencies"]["top1"], color="grey", linestyle="--", label="token frequencies")
    axes[0].set_title("blank filled correctly")
    axes[1].bar(["BERT", "GPT"], [scores["bert"]["accuracy"], scores["gpt"]["accuracy"]], color=["#4c72b0", "#dd8452"])
    axes[1].axhline(chance, color="grey", linestyle="--", label="chance")
    axes[1].set_title("package classification accuracy")
    for ax in axes:
        ax.set_ylim(0, 1)
        ax.legend()
    figure = ctx.save_figure(fig, "bert_vs_gpt", T("Blank filling and classification", "빈칸 채우기와 분류"))

    frequency, nats = blank["frequencies"], {family: blank[family]["nats"] for family in ("bert", "gpt", "frequencies")}
    kept = blank["kept"]
    copying = T(  # why the table's masked-LM loss can sit below the frequency guess while the blanks do not
        f" Its own validation loss is lower than the frequency guess because that loss also counts the hidden "
        f"tokens left unchanged, which it copies without reading any context (top-1 {kept['top1']:.2f} on "
        f"{kept['n']} of them).",
        f" 자기 검증 손실이 빈도 추측보다 낮은 것은 그 손실이 가리지 않고 그대로 둔 토큰도 세고, BERT가 그 토큰을 문맥 "
        f"없이 베끼기 때문이다(그런 토큰 {kept['n']}개에서 top-1 {kept['top1']:.2f}).",
    ) if bert_run.evals[-1]["val_loss"] < blank["frequencies"]["nats"] and kept["top1"] >= 0.5 else T("", "")
    plateau = T(
        f" BERT has not left masked LM's first plateau: at the blanks it scores like a guess from token frequencies. "
        f"A decoder has the previous token at every position for free; at a blank BERT holds only {MASK_TOKEN}, so it "
        f"learns nothing there until its attention has found where the neighbours are, which this BERT, even with the "
        f"recipe, had not done in {pre_steps} steps." + copying.en,
        f" BERT는 아직 masked LM의 첫 정체 구간에 있다: 빈칸에서 토큰 빈도만으로 찍은 것과 같은 점수다. 디코더는 "
        f"모든 위치에서 바로 앞 토큰을 거저 보지만 빈칸의 BERT에는 {MASK_TOKEN}뿐이라, 어텐션이 이웃의 위치를 찾기 "
        f"전에는 배우는 것이 없고, 이 BERT는 그 방법을 쓰고도 {pre_steps} 스텝 안에 그러지 못했다." + copying.ko,
    ) if bert_on_plateau else T("", "")
    recipe = T(
        " Built as published, a BERT this small stays on masked LM's first plateau, predicting token frequencies at "
        "every blank, for well over a thousand steps, so this one was pre-trained with a recipe for leaving it: "
        "ALiBi positions (Press et al. 2022: each head subtracts a penalty growing with distance, so a blank's "
        "neighbours are its nearest keys from the first step, where a learned position table must first learn which "
        "positions are adjacent), initialisation std 1/√d instead of 0.02 (at width 64, std-0.02 matrices give tiny "
        "products and tiny gradients), pre-LN (Xiong et al. 2020: gradients reach the first layer through the residual "
        f"path, so a learning rate of {BERT_LR:g} is stable) and {round(100 * bert.config.mask_rate)} % of tokens "
        "masked instead of 15 % (Wettig et al. 2023, \"Should You Mask 15 % in Masked Language Modeling?\": more "
        "blanks, more training signal per step).",
        " 논문 그대로 만든 이만큼 작은 BERT는 천 스텝이 훨씬 넘도록 masked LM의 첫 정체 구간에 머물며 빈칸마다 토큰 "
        "빈도만 맞힌다. 그래서 이 BERT는 그 구간을 벗어나는 방법으로 사전학습했다: ALiBi 위치(Press et al. 2022: "
        "헤드마다 거리에 따라 커지는 벌점을 빼므로 첫 스텝부터 빈칸의 이웃이 가장 가까운 키다. 학습형 위치 표는 어느 "
        "위치가 이웃인지부터 배워야 한다), 초기화 표준편차 0.02 대신 1/√d(폭 64에서 표준편차 0.02 행렬은 곱도 기울기도 "
        "아주 작다), pre-LN(Xiong et al. 2020: 기울기가 잔차 경로로 첫 층까지 그대로 닿아 학습률 "
        f"{BERT_LR:g}에서도 안정적이다), 가리는 토큰 비율 15 % 대신 {round(100 * bert.config.mask_rate)} %(Wettig et "
        "al. 2023, \"Should You Mask 15 % in Masked Language Modeling?\": 빈칸이 많을수록 스텝마다 학습 신호도 많다).",
    )
    blank_verdict = None if bert_on_plateau else compare_intervals(blank_iv["bert"], blank_iv["gpt"])
    signal = {"bert": bert.config.mask_rate * (block - 1), "gpt": block}  # targets per window and step
    fewer_targets = T(  # why the side that sees more can still score no better after the same steps
        f" Per window and step GPT learns from all {signal['gpt']} positions, BERT only from the "
        f"{signal['bert']:.0f} it hid ({signal['bert'] / signal['gpt']:.0%}), so after the same steps it has had "
        "far fewer training targets (the inefficiency ELECTRA, Clark et al. 2020, set out to remove).",
        f" 창 하나, 스텝 하나마다 GPT는 {signal['gpt']}개 위치 모두에서 배우지만 BERT는 가린 {signal['bert']:.0f}개"
        f"({signal['bert'] / signal['gpt']:.0%})에서만 배운다. 그래서 같은 스텝 뒤에도 학습 목표를 훨씬 적게 받았다"
        "(ELECTRA, Clark et al. 2020이 없애려 한 비효율).",
    ) if blank_verdict is not True and not bert_on_plateau else T("", "")
    claims = [
        Claim(T("Seeing both sides of a blank (BERT) fills it better than seeing only the left (GPT).",
                "빈칸의 양쪽을 모두 보는 BERT가 왼쪽만 보는 GPT보다 빈칸을 더 잘 채운다."),
              T(f"top-1 on the same {n_blanks} blanks (95 % intervals): BERT {with_iv(bert_blank, blank_iv['bert'])}, "
                f"GPT {with_iv(gpt_blank, blank_iv['gpt'])}, token frequencies "
                f"{with_iv(frequency['top1'], blank_iv['frequencies'])}; cross-entropy BERT {nats['bert']:.2f}, GPT "
                f"{nats['gpt']:.2f}, frequencies {nats['frequencies']:.2f} nats.{plateau.en}{fewer_targets.en}",
                f"같은 빈칸 {n_blanks}개의 top-1 정확도 (95 % 구간): BERT {with_iv(bert_blank, blank_iv['bert'])}, GPT "
                f"{with_iv(gpt_blank, blank_iv['gpt'])}, 토큰 빈도 {with_iv(frequency['top1'], blank_iv['frequencies'])}; "
                f"교차 엔트로피 BERT {nats['bert']:.2f}, GPT {nats['gpt']:.2f}, 빈도 {nats['frequencies']:.2f} nats."
                f"{plateau.ko}{fewer_targets.ko}"),
              blank_verdict,
              chance=frequency["top1"], interval=blank_iv["bert"]),
        demonstration(T("A decoder generates text token by token; an encoder has no such interface.",
                "디코더는 토큰을 하나씩 이어 생성하고, 인코더에는 그런 방법이 없다."),
              T(f"GPT produced {len(gpt_tokens)} tokens; BERT generation {'worked' if bert_generates else 'was refused'}",
                f"GPT는 토큰 {len(gpt_tokens)}개를 생성; BERT 생성은 {'됨' if bert_generates else '거부됨'}"),
              len(gpt_tokens) > 0 and not bert_generates),
        Claim(T("Both pre-trained models can be fine-tuned into classifiers well above chance.",
                "사전학습한 두 모델 모두 미세조정하면 우연 수준보다 훨씬 잘 분류한다."),
              T(f"accuracy on {n_test} held-out docstrings (95 % intervals): BERT "
                f"{with_iv(scores['bert']['accuracy'], class_iv['bert'])}, GPT "
                f"{with_iv(scores['gpt']['accuracy'], class_iv['gpt'])}, chance {chance:.2f} (well above: the "
                f"interval's lower end above 1.5 × chance)",
                f"학습에 쓰지 않은 docstring {n_test}개 정확도 (95 % 구간): BERT "
                f"{with_iv(scores['bert']['accuracy'], class_iv['bert'])}, GPT "
                f"{with_iv(scores['gpt']['accuracy'], class_iv['gpt'])}, 우연 수준 {chance:.2f} (훨씬 높다: 구간의 "
                f"아래 끝이 우연 수준의 1.5배보다 높음)"),
              compare_intervals((min(class_iv["bert"][0], class_iv["gpt"][0]), max(class_iv["bert"][1], class_iv["gpt"][1])),
                                (1.5 * chance, 1.5 * chance)),
              chance=chance, interval=class_iv["bert"]),
        Claim(T("For understanding tasks such as classification, the encoder beats a decoder of the same size.",
                "분류 같은 이해 과제에서는 같은 크기의 디코더보다 인코더가 낫다."),
              T(f"accuracy BERT {with_iv(scores['bert']['accuracy'], class_iv['bert'])} vs GPT "
                f"{with_iv(scores['gpt']['accuracy'], class_iv['gpt'])} (chance {chance:.2f}); macro-F1 BERT "
                f"{scores['bert']['macro_f1']:.3f} vs GPT {scores['gpt']['macro_f1']:.3f}"
                + (". Inconclusive: BERT was fine-tuned from an encoder still on masked LM's first plateau (see the "
                   "blanks), a broken baseline that cannot decide encoder against decoder" if bert_on_plateau else ""),
                f"정확도 BERT {with_iv(scores['bert']['accuracy'], class_iv['bert'])} 대 GPT "
                f"{with_iv(scores['gpt']['accuracy'], class_iv['gpt'])} (우연 수준 {chance:.2f}); macro-F1 BERT "
                f"{scores['bert']['macro_f1']:.3f} 대 GPT {scores['gpt']['macro_f1']:.3f}"
                + (". 판정 보류: BERT는 아직 masked LM의 첫 정체 구간에 있는 인코더에서 미세조정했다(빈칸 결과 참고). 망가진 "
                   "기준으로는 인코더 대 디코더를 가릴 수 없다" if bert_on_plateau else "")),
              None if bert_on_plateau else compare_intervals(class_iv["bert"], class_iv["gpt"]),
              chance=chance, interval=class_iv["bert"]),
    ]
    ctx.progress(6, 6)
    summary = T(
        f"Same size, same data: BERT fills {bert_blank:.0%} of blanks vs GPT {gpt_blank:.0%}; classifying docstrings "
        f"by package, BERT {scores['bert']['accuracy']:.0%} vs GPT {scores['gpt']['accuracy']:.0%}."
        + recipe.en + plateau.en + ("" if korean or quick else " (NSMC not downloaded: the Korean comparison was skipped.)")
        + (f" Quick mode is small ({pre_steps} pre-training steps on {len(stream)} tokens): claims at the floor are "
           "marked inconclusive." if quick else ""),
        f"같은 크기·데이터: 빈칸 정답률 BERT {bert_blank:.0%}, GPT {gpt_blank:.0%}; docstring 패키지 분류 정확도 "
        f"BERT {scores['bert']['accuracy']:.0%}, GPT {scores['gpt']['accuracy']:.0%}."
        + recipe.ko + plateau.ko + ("" if korean or quick else " (NSMC를 내려받지 않아 한국어 비교는 건너뜀.)")
        + (f" 빠른 모드는 작다(토큰 {len(stream)}개로 사전학습 {pre_steps}스텝): 바닥에 있는 주장은 판정 보류로 표시한다."
           if quick else ""),
    )
    metrics = {"blank_accuracy": {"bert": bert_blank, "gpt": gpt_blank}, "blanks": n_blanks, "blank_scores": blank,
               "blank_intervals": blank_iv, "bert_on_plateau": bert_on_plateau, "pretrain_steps": pre_steps,
               "classification": scores, "korean": korean, "params": {"bert": bert.num_params(), "gpt": gpt.num_params()},
               "labels": labelled.names, "cls_token": CLS_TOKEN}
    return ChapterResult(summary, claims=claims, tables=[table, confusion], figures=[figure], samples=samples,
                         metrics=metrics)


CHAPTER = Chapter("2.2", T("BERT vs GPT", "BERT 대 GPT"), run)
