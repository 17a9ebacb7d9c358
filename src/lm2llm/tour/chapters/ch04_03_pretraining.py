"""Chapter 4.3, pre-training: next-token prediction on raw text — n-gram, LSTM and GPT on the same clock.

All three learn from the same python-docs documents and are scored on the same held-out documents. The
LSTM and the GPT read characters through the project's Trainer (AdamW, warm-up, bf16 where the CPU has
it) for the same wall-clock budget; the Kneser-Ney trigram counts words and needs only a fraction of it.
Different tokenisations are compared in bits per UTF-8 byte of the held-out text (the n-gram's unknown
words are scored as `<unk>`, which flatters it slightly). Each model writes a sample from the same prompt.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch

from lm2llm import ngram
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


def split_documents(documents: int) -> dict[str, list[str]]:
    """python-docs documents; every 20th is held out for validation."""
    docs = load_documents("python-docs", limit=documents)
    return {"train": [d for i, d in enumerate(docs) if i % 20], "val": docs[::20]}


def write_shards(directory: Path, split: dict[str, list[str]]) -> tuple[TokenShards, CharTokenizer]:
    """The documents at character level, as token shards for the Trainer."""
    tokenizer = CharTokenizer.train(split["train"] + split["val"])
    writer = ShardWriter(directory, tokenizer.vocab_size)
    for name, docs in split.items():
        for doc in docs:
            writer.write(name, tokenizer.encode(doc + "\n\n"))
    writer.close(tokenizer="char")
    return TokenShards(directory), tokenizer


def ngram_baseline(split: dict[str, list[str]]) -> tuple[dict, str]:
    """A word trigram with Kneser-Ney smoothing: its training seconds, bits per byte on the held-out lines, a sample."""
    def lines(docs: list[str]) -> list[str]:
        return [line for doc in docs for line in doc.splitlines() if line.strip()]

    start = time.perf_counter()
    model = ngram.train(lines(split["train"]), ngram.NgramConfig(order=3))
    seconds = time.perf_counter() - start
    held_out = lines(split["val"])
    evaluation = ngram.evaluate(model, held_out)
    utf8_bytes = sum(len(line.encode("utf-8")) + 1 for line in held_out)  # + the newline each line ends with
    bpb = -evaluation.log10_prob * math.log2(10) / utf8_bytes
    sample = ngram.generate(model, PROMPT.strip(), max_words=30, temperature=0.8, seed=0)
    return {"seconds": seconds, "val_bpb": bpb, "perplexity_per_word": evaluation.perplexity}, sample


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
    split = split_documents(300 if ctx.quick else 3000)
    counted, ngram_sample = ngram_baseline(split)
    samples = [Sample(T(f"Kneser-Ney trigram ({counted['seconds']:.1f} s of counting)",
                        f"Kneser-Ney 3-gram (세는 데 {counted['seconds']:.1f}초)"), f"{PROMPT}{ngram_sample}")]
    with tempfile.TemporaryDirectory() as tmp:
        shards, tokenizer = write_shards(Path(tmp), split)
        curves, stats = {}, {}
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
        ax.plot([c["elapsed_s"] for c in curve], [c["val_bpb"] for c in curve], "o-", markersize=3, label=name)
    ax.plot([counted["seconds"]], [counted["val_bpb"]], "s", color="black", label="Kneser-Ney trigram (words)")
    ax.axhline(counted["val_bpb"], color="black", linestyle=":", linewidth=0.8)
    ax.set_xlabel("wall-clock seconds")
    ax.set_ylabel("validation bits per byte")
    ax.legend()
    ax.grid(alpha=0.3)
    figure = ctx.save_figure(fig, "val_loss", T("Validation loss on the same clock", "같은 시간 동안의 검증 손실"))
    final = {name: curve[-1] for name, curve in curves.items()}
    rows = [[name, sum(p.numel() for p in built[name].parameters()), stats[name]["steps"], stats[name]["tokens"],
             round(stats[name]["tokens_per_s"]), stats[name]["dtype"], round(final[name]["val_loss"], 3),
             round(final[name]["val_bpb"], 3)] for name in curves]
    rows.append(["Kneser-Ney trigram", "-", "-", "-", "-", "counts", "-", round(counted["val_bpb"], 3)])
    table = Table(T("Same data, same seconds", "같은 데이터, 같은 시간"),
                  ["model", "params", "steps", "tokens", "tokens/s", "dtype", "val loss (nats/char)", "bits/byte"], rows)
    gpt, lstm = final["GPT"]["val_loss"], final["LSTM"]["val_loss"]
    best_neural = min(final["GPT"]["val_bpb"], final["LSTM"]["val_bpb"])
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
        Claim(T("A neural language model predicts held-out text better than a smoothed n-gram model.",
                "신경망 언어 모델은 평활화한 n-gram 모델보다 처음 보는 텍스트를 더 잘 예측한다."),
              T(f"best neural {best_neural:.2f} vs trigram {counted['val_bpb']:.2f} bits/byte after {seconds:.0f} s",
                f"{seconds:.0f}초 후 바이트당 비트: 신경망 최고 {best_neural:.2f}, 3-gram {counted['val_bpb']:.2f}"),
              best_neural < counted["val_bpb"]),
    ]
    ctx.progress(len(built) + 1, len(built) + 1)
    summary = T(f"Same python-docs text, {seconds:.0f} s each: GPT {final['GPT']['val_bpb']:.2f}, LSTM "
                f"{final['LSTM']['val_bpb']:.2f}, Kneser-Ney trigram {counted['val_bpb']:.2f} bits per byte.",
                f"같은 python-docs 텍스트로 각각 {seconds:.0f}초: 바이트당 비트 GPT {final['GPT']['val_bpb']:.2f}, "
                f"LSTM {final['LSTM']['val_bpb']:.2f}, Kneser-Ney 3-gram {counted['val_bpb']:.2f}.")
    return ChapterResult(summary, claims=claims, tables=[table], figures=[figure], samples=samples,
                         metrics={"seconds_per_model": seconds, "curves": curves, "stats": stats, "ngram": counted})


CHAPTER = Chapter("4.3", T("Pre-training", "사전학습"), run)
