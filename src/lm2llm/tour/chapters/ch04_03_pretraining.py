"""Chapter 4.3, pre-training: next-token prediction on raw text, LSTM vs GPT on the same clock.

Both models see the same python-docs characters through the project's Trainer (AdamW, warm-up + cosine,
bf16 where the CPU has it) for the same wall-clock budget. Their validation losses over time share one
plot, and each writes a sample from the same prompt.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch

from lm2llm.data import load_documents
from lm2llm.data.shards import ShardWriter, TokenShards
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.models import build_model
from lm2llm.tokenizer import CharTokenizer
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, Claim, Sample, T, Table
from lm2llm.tour.plots import plt
from lm2llm.training import CausalLM, Trainer, build_config
from lm2llm.training.data import ShardBatches

PROMPT = "The "
CONTEXT = 64


def write_shards(directory: Path, documents: int) -> tuple[TokenShards, CharTokenizer]:
    """python-docs documents at character level; every 20th document is validation."""
    docs = load_documents("python-docs", limit=documents)
    tokenizer = CharTokenizer.train(docs)
    writer = ShardWriter(directory, tokenizer.vocab_size)
    for i, doc in enumerate(docs):
        writer.write("val" if i % 20 == 0 else "train", tokenizer.encode(doc + "\n\n"))
    writer.close(tokenizer="char")
    return TokenShards(directory), tokenizer


def models(vocab: int, quick: bool) -> dict[str, torch.nn.Module]:
    width = 64 if quick else 128
    torch.manual_seed(0)  # the same initial weights on every tour
    return {
        "LSTM": build_model("lstm", d_embed=width, d_hidden=2 * width, n_layer=1 if quick else 2, vocab_size=vocab,
                            use_torch=True),  # the fused kernel: the fair fight on speed
        "GPT": build_model("gpt", context_length=CONTEXT, n_layer=2 if quick else 4, n_head=4, d_model=width,
                           vocab_size=vocab),
    }


def train_for(model: torch.nn.Module, shards: TokenShards, tokenizer: CharTokenizer, seconds: float,
              eval_every: int) -> tuple[list[dict], dict]:
    cfg = build_config({"batch_size": 16, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 20, "max_steps": 100_000,
                        "schedule": "constant", "max_seconds": seconds, "eval_every": eval_every,
                        "eval_batches": 4, "log_every": eval_every, "progress": False, "device": "cpu"})
    torch.manual_seed(0)
    data = ShardBatches(shards, block_size=CONTEXT, batch_size=cfg.batch_size, seed=0,
                        eval_batches=cfg.eval_batches, tokenizer=tokenizer)
    trainer = Trainer(model, CausalLM(), data, cfg)
    start = trainer.evaluate()  # the untrained model: every curve starts at about ln(vocab)
    result = trainer.fit()
    curve = [{"elapsed_s": 0.0, **start}, *result.evals]
    return curve, {"steps": result.steps, "tokens": result.tokens, "tokens_per_s": result.tokens_per_second,
                   "dtype": str(trainer.dtype).removeprefix("torch.")}


def run(ctx: ChapterContext) -> ChapterResult:
    seconds = 3.0 if ctx.quick else 60.0
    with tempfile.TemporaryDirectory() as tmp:
        shards, tokenizer = write_shards(Path(tmp), 300 if ctx.quick else 3000)
        curves, stats, samples = {}, {}, []
        built = models(tokenizer.vocab_size, ctx.quick)
        for i, (name, model) in enumerate(built.items()):
            curves[name], stats[name] = train_for(model, shards, tokenizer, seconds, 10 if ctx.quick else 100)
            text = TextGenerator(model.float(), tokenizer).generate(
                [PROMPT], SamplingConfig(max_new_tokens=120 if ctx.quick else 300, temperature=0.8, seed=0))[0].text
            samples.append(Sample(T(f"{name} after {seconds:.0f} s", f"{seconds:.0f}초 학습한 {name}"), PROMPT + text))
            ctx.progress(i + 1, len(built) + 1)
    uniform = math.log(tokenizer.vocab_size)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, curve in curves.items():
        ax.plot([c["elapsed_s"] for c in curve], [c["val_loss"] for c in curve], "o-", markersize=3, label=name)
    ax.axhline(uniform, color="grey", linestyle=":", label="uniform guess ln|V|")
    ax.set_xlabel("wall-clock seconds")
    ax.set_ylabel("validation loss (nats/char)")
    ax.legend()
    ax.grid(alpha=0.3)
    figure = ctx.save_figure(fig, "val_loss", T("Validation loss on the same clock", "같은 시간 동안의 검증 손실"))
    final = {name: curve[-1] for name, curve in curves.items()}
    rows = [[name, sum(p.numel() for p in built[name].parameters()), stats[name]["steps"], stats[name]["tokens"],
             round(stats[name]["tokens_per_s"]), stats[name]["dtype"], round(final[name]["val_loss"], 3),
             round(final[name]["val_bpb"], 3)] for name in curves]
    table = Table(T("Same data, same seconds", "같은 데이터, 같은 시간"),
                  ["model", "params", "steps", "tokens", "tokens/s", "dtype", "val loss", "bits/byte"], rows)
    gpt, lstm = final["GPT"]["val_loss"], final["LSTM"]["val_loss"]
    claims = [
        Claim(T("Predicting the next token of raw text, with no labels, teaches a model the language: its loss "
                "falls far below guessing uniformly.",
                "레이블 없이 원문 텍스트의 다음 토큰을 맞히는 것만으로 모델은 언어를 배운다: 손실이 균등 추측보다 훨씬 낮아진다."),
              T(f"GPT validation loss {gpt:.2f} vs ln|V| = {uniform:.2f} nats/char",
                f"GPT 검증 손실 {gpt:.2f}, 균등 추측 ln|V| = {uniform:.2f} nats/글자"),
              gpt < 0.75 * uniform),
        Claim(T("Given the same compute time, the Transformer learns more than the recurrent network.",
                "같은 계산 시간이 주어지면 Transformer가 순환 신경망보다 더 많이 배운다."),
              T(f"after {seconds:.0f} s: GPT {gpt:.3f} vs LSTM {lstm:.3f} validation loss",
                f"{seconds:.0f}초 후 검증 손실: GPT {gpt:.3f}, LSTM {lstm:.3f}"),
              gpt < lstm),
    ]
    ctx.progress(len(built) + 1, len(built) + 1)
    summary = T(f"Same python-docs characters, {seconds:.0f} s each: GPT reaches {gpt:.2f}, LSTM {lstm:.2f} "
                f"nats/char (uniform {uniform:.2f}).",
                f"같은 python-docs 글자로 각각 {seconds:.0f}초: GPT {gpt:.2f}, LSTM {lstm:.2f} nats/글자 "
                f"(균등 추측 {uniform:.2f}).")
    return ChapterResult(summary, claims=claims, tables=[table], figures=[figure], samples=samples,
                         metrics={"seconds_per_model": seconds, "curves": curves, "stats": stats})


CHAPTER = Chapter("4.3", T("Pre-training", "사전학습"), run)
