"""Chapter 4.3, pre-training: next-token prediction on raw text — n-gram, LSTM and GPT on the same budget.

The corpus is a small "web": python-docs documents mixed with Q&A pages about the synthetic tasks of
`lm2llm.finetune.tasks` (plain "Q: ... / A: ..." text, never the chat template, and never a prompt that
chapters 4.4 and 4.5 hold out). All three models learn from the same documents and are scored on the same
held-out ones. The LSTM and the GPT read byte-level BPE tokens and are trained by `lm2llm.training.train`,
exactly what `lm2llm train` runs, for the same budget of CPU time (not wall time: on a shared machine the
other processes would decide who trains longer); the Kneser-Ney trigram counts words and needs only a
fraction of it. Different tokenisations are compared in bits per UTF-8 byte of the held-out
text (the n-gram's unknown words are scored as `<unk>`, which flatters it slightly).

Both networks are saved as ordinary run directories in this chapter's folder (`runs/gpt`, `runs/lstm`):
chapter 4.4 fine-tunes the GPT, and chapter 4.5 aligns the result.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path

from lm2llm import ngram
from lm2llm.data import load_documents
from lm2llm.data.shards import ShardWriter
from lm2llm.finetune.tasks import make_suite, pretraining_documents
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.models import load_model
from lm2llm.tokenizer import BPETokenizer
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, Claim, Sample, T, Table
from lm2llm.tour.plots import plt
from lm2llm.training import build_config
from lm2llm.training.run import train

PROMPT = "The "
CONTEXT = 128
VOCAB = 512
QA_RESERVE = 50  # per task, the first prompts of the suite (seed 0) stay out of pre-training: later chapters' held-out sets


def build_corpus(quick: bool) -> dict[str, list[str]]:
    """python-docs documents and task Q&A pages, shuffled together; every 20th document is held out."""
    docs = load_documents("python-docs", limit=300 if quick else 3000)
    qa_pages = pretraining_documents(200 if quick else 1500, reserve=QA_RESERVE, seed=0)
    mixed = docs + qa_pages
    random.Random(0).shuffle(mixed)
    return {"train": [d for i, d in enumerate(mixed) if i % 20], "val": mixed[::20],
            "counts": [len(docs), len(qa_pages)]}


def write_shards(directory: Path, split: dict[str, list[str]]) -> BPETokenizer:
    """A BPE tokenizer trained on the training documents, and every document as token shards after it."""
    tokenizer = BPETokenizer.train(split["train"], VOCAB)
    tokenizer.save(directory / "tokenizer")
    writer = ShardWriter(directory, tokenizer.vocab_size)
    for name in ("train", "val"):
        for doc in split[name]:
            writer.write(name, [*tokenizer.encode(doc), tokenizer.eos_id])
    writer.close(tokenizer=tokenizer.kind, tokenizer_dir="tokenizer")
    return tokenizer


def ngram_baseline(split: dict[str, list[str]]) -> tuple[dict, str]:
    """A word trigram with Kneser-Ney smoothing: its training CPU seconds, bits per byte on the held-out lines, a sample."""
    def lines(docs: list[str]) -> list[str]:
        return [line for doc in docs for line in doc.splitlines() if line.strip()]

    start = time.process_time()  # CPU seconds, like the networks' budget
    model = ngram.train(lines(split["train"]), ngram.NgramConfig(order=3))
    seconds = time.process_time() - start
    held_out = lines(split["val"])
    evaluation = ngram.evaluate(model, held_out)
    utf8_bytes = sum(len(line.encode("utf-8")) + 1 for line in held_out)  # + the newline each line ends with
    bpb = -evaluation.log10_prob * math.log2(10) / utf8_bytes
    sample = ngram.generate(model, PROMPT.strip(), max_words=30, temperature=0.8, seed=0)
    return {"seconds": seconds, "val_bpb": bpb, "perplexity_per_word": evaluation.perplexity}, sample


def model_settings(quick: bool) -> dict[str, tuple[str, dict]]:
    """(family, model.* overrides) per model: about the same number of parameters for both."""
    width = 64 if quick else 128
    return {
        "LSTM": ("lstm", {"d_embed": width, "d_hidden": 2 * width, "n_layer": 1 if quick else 2,
                          "use_torch": True}),  # the fused kernel: the fair fight on speed
        "GPT": ("gpt", {"context_length": CONTEXT, "n_layer": 2 if quick else 4, "n_head": 4, "d_model": width}),
    }


def pretrain(family: str, overrides: dict, data: Path, out: Path, seconds: float, eval_every: int) -> tuple[list[dict], dict]:
    """One `lm2llm train` run for `seconds` of this process's CPU time; its validation curve and throughput."""
    cfg = build_config({
        "model": family, "data": str(data), "out": str(out),
        "block_size": CONTEXT, "batch_size": 8, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": 20,
        "max_steps": 100_000, "schedule": "constant", "max_seconds": seconds, "clock": "cpu", "eval_every": eval_every,
        "eval_batches": 4, "log_every": eval_every, "checkpoint_every": 100_000, "progress": False,
        "device": "cpu", "seed": 0, "sample_tokens": 0,
        "dtype": "float32",  # at these widths bf16 autocast spends more on casts than it saves on this CPU
    }, model_overrides=overrides)
    result, _ = train(cfg)
    return result.evals, {"steps": result.steps, "tokens": result.tokens, "tokens_per_s": result.tokens_per_second}


def sample(run: Path, tokenizer: BPETokenizer, prompt: str, tokens: int, temperature: float) -> str:
    model = load_model(run)
    return TextGenerator(model, tokenizer).generate(
        [prompt], SamplingConfig(max_new_tokens=tokens, temperature=temperature, seed=0))[0].text


def run(ctx: ChapterContext) -> ChapterResult:
    seconds = 4.0 if ctx.quick else 90.0  # CPU seconds per network: with 2 threads, about half that in wall time
    split = build_corpus(ctx.quick)
    counted, ngram_sample = ngram_baseline(split)
    samples = [Sample(T(f"Kneser-Ney trigram ({counted['seconds']:.1f} s of counting)",
                        f"Kneser-Ney 3-gram (세는 데 {counted['seconds']:.1f}초)"), f"{PROMPT}{ngram_sample}")]
    data, runs = ctx.out_dir / "data", ctx.out_dir / "runs"
    for stale in (data, runs):  # a forced rerun starts clean
        shutil.rmtree(stale, ignore_errors=True)
    tokenizer = write_shards(data, split)
    settings = model_settings(ctx.quick)
    curves, stats, params = {}, {}, {}
    for i, (name, (family, overrides)) in enumerate(settings.items()):
        run_dir = runs / name.lower()
        curves[name], stats[name] = pretrain(family, overrides, data, run_dir, seconds, 20 if ctx.quick else 100)
        params[name] = sum(p.numel() for p in load_model(run_dir).parameters())
        text = sample(run_dir, tokenizer, PROMPT, 60 if ctx.quick else 150, 0.8)
        samples.append(Sample(T(f"{name} after {seconds:.0f} CPU s", f"CPU {seconds:.0f}초 학습한 {name}"), PROMPT + text))
        ctx.progress(i + 1, len(settings) + 1)
    _, held_out = make_suite(0, 1, seed=0, tasks=["korean_to_digits", "facts"])
    questions = "\n\n".join(f"Q: {r.prompt}\nA:" + sample(runs / "gpt", tokenizer, f"Q: {r.prompt}\nA:", 8, 0.0)
                             for r in held_out)
    samples.append(Sample(T("GPT continues held-out questions (greedy; the answers: "
                            + ", ".join(r.answer for r in held_out) + ")",
                            "GPT가 처음 보는 질문을 이어 쓴다 (greedy; 정답: " + ", ".join(r.answer for r in held_out) + ")"),
                          questions))
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, curve in curves.items():
        ax.plot([c["cpu_s"] for c in curve], [c["val_bpb"] for c in curve], "o-", markersize=3, label=name)
    ax.plot([counted["seconds"]], [counted["val_bpb"]], "s", color="black", label="Kneser-Ney trigram (words)")
    ax.axhline(counted["val_bpb"], color="black", linestyle=":", linewidth=0.8)
    ax.set_xlabel("CPU seconds")
    ax.set_ylabel("validation bits per byte")
    ax.legend()
    ax.grid(alpha=0.3)
    figure = ctx.save_figure(fig, "val_loss", T("Validation loss on the same CPU budget", "같은 CPU 시간 동안의 검증 손실"))
    final = {name: curve[-1] for name, curve in curves.items()}
    rows = [[name, params[name], stats[name]["steps"], stats[name]["tokens"], round(stats[name]["tokens_per_s"]),
             round(final[name]["val_loss"], 3), round(final[name]["val_bpb"], 3)] for name in curves]
    rows.append(["Kneser-Ney trigram", "-", "-", "-", "-", "-", round(counted["val_bpb"], 3)])
    table = Table(T("Same data, same CPU seconds", "같은 데이터, 같은 CPU 시간"),
                  ["model", "params", "steps", "tokens", "tokens/s", "val loss (nats/token)", "bits/byte"], rows)
    uniform = math.log(tokenizer.vocab_size)
    gpt, lstm = final["GPT"]["val_loss"], final["LSTM"]["val_loss"]
    best_neural = min(final["GPT"]["val_bpb"], final["LSTM"]["val_bpb"])
    claims = [
        Claim(T("Predicting the next token of raw text, with no labels, teaches a model the language: its loss "
                "falls far below guessing uniformly.",
                "레이블 없이 원문 텍스트의 다음 토큰을 맞히는 것만으로 모델은 언어를 배운다: 손실이 균등 추측보다 훨씬 낮아진다."),
              T(f"GPT validation loss {gpt:.2f} vs ln|V| = {uniform:.2f} nats/token",
                f"GPT 검증 손실 {gpt:.2f}, 균등 추측 ln|V| = {uniform:.2f} nats/토큰"),
              gpt < 0.75 * uniform),
        Claim(T("Given the same compute time, the Transformer learns more than the recurrent network.",
                "같은 계산 시간이 주어지면 Transformer가 순환 신경망보다 더 많이 배운다."),
              T(f"after {seconds:.0f} CPU s: GPT {gpt:.3f} vs LSTM {lstm:.3f} validation loss (same tokens)",
                f"CPU {seconds:.0f}초 후 검증 손실(같은 토큰): GPT {gpt:.3f}, LSTM {lstm:.3f}"),
              gpt < lstm),
        Claim(T("A neural language model predicts held-out text better than a smoothed n-gram model.",
                "신경망 언어 모델은 평활화한 n-gram 모델보다 처음 보는 텍스트를 더 잘 예측한다."),
              T(f"best neural {best_neural:.2f} vs trigram {counted['val_bpb']:.2f} bits/byte after {seconds:.0f} CPU s",
                f"CPU {seconds:.0f}초 후 바이트당 비트: 신경망 최고 {best_neural:.2f}, 3-gram {counted['val_bpb']:.2f}"),
              best_neural < counted["val_bpb"]),
    ]
    ctx.progress(len(settings) + 1, len(settings) + 1)
    n_docs, n_qa = split["counts"]
    summary = T(f"{n_docs} python-docs documents + {n_qa} Q&A pages, {seconds:.0f} CPU s each: GPT "
                f"{final['GPT']['val_bpb']:.2f}, LSTM {final['LSTM']['val_bpb']:.2f}, Kneser-Ney trigram "
                f"{counted['val_bpb']:.2f} bits per byte. The GPT is saved for fine-tuning (4.4).",
                f"python-docs 문서 {n_docs}개 + Q&A 페이지 {n_qa}개로 각각 CPU {seconds:.0f}초: 바이트당 비트 GPT "
                f"{final['GPT']['val_bpb']:.2f}, LSTM {final['LSTM']['val_bpb']:.2f}, Kneser-Ney 3-gram "
                f"{counted['val_bpb']:.2f}. GPT는 미세조정(4.4)을 위해 저장한다.")
    return ChapterResult(summary, claims=claims, tables=[table], figures=[figure], samples=samples,
                         metrics={"seconds_per_model": seconds, "curves": curves, "stats": stats, "ngram": counted,
                                  "corpus": {"python_docs": n_docs, "qa_pages": n_qa, "qa_reserve": QA_RESERVE},
                                  "data": "data", "runs": {name: f"runs/{name.lower()}" for name in settings}})


CHAPTER = Chapter("4.3", T("Pre-training", "사전학습"), run)
