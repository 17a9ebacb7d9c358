"""Chapter 4.3, pre-training: next-token prediction on raw text — unigram, n-gram, LSTM and GPT on the same tokens.

The corpus is a small "web": python-docs documents mixed with Q&A pages about the synthetic tasks of
`lm2llm.finetune.tasks` (plain "Q: ... / A: ..." text, never the chat template, and never a prompt that
chapters 4.4 and 4.5 hold out). Every model learns from the same documents, cut into the same byte-level
BPE tokens, and is scored on the same held-out tokens (each held-out document and its end-of-text token),
in bits per UTF-8 byte:

- a unigram model (token frequencies, add-one smoothed): what "better than guessing" is measured against;
- a Kneser-Ney token trigram (our `lm2llm.ngram`, counting the BPE ids): no `<unk>` flatters it, since a
  token never seen in training is charged p(`<unk>` | context) shared evenly among all unseen ids;
- an LSTM and a GPT trained by `lm2llm.training.train`, exactly what `lm2llm train` runs, for the same
  number of steps of the same batch shape, so both see the same number of tokens. Budgets are steps, not
  seconds: the same machine gives the same verdicts run after run (the CPU seconds each took are reported).
  In full mode the GPT trains with the Muon recipe (`optimizer=muon`); the LSTM's recurrent cell has no
  linear layer for Muon, so it keeps AdamW. Full mode trains both in bf16 autocast where the CPU computes
  it natively (fp32 master weights; every score is computed in fp32 afterwards), side by side, one per
  core (`ctx.in_parallel`): a step of either costs about 0.65 of fp32's, and the two take the wall time of one.

Differences are decided by a paired bootstrap over the held-out documents: a 95 % interval of the
difference in bits per byte that contains 0 is inconclusive. The chapter's budgets follow `ctx.steps`, so
a full tour re-checks it at half its steps (`lm2llm tour --recheck/--no-recheck`).

The claim against the trigram is decided on the held-out Q&A pages, where a page's answers are read from its
questions (a city named in the question, its words reversed or sorted, a number rewritten), further back than
the trigram's two tokens of context: the limit of n-grams the guide names (a fixed window, long-range
dependencies). On python-docs prose the next token mostly follows from the last few, which the trigram counts
exactly over every training token; there the result depends on the budget (at 1,200 steps the GPT was level
with the trigram, 2.03 vs 2.00 bits per byte; at the half-budget re-check's 600 it lost, 2.47 vs 2.00, while on
the Q&A pages it won at both, 0.55 and 0.58 vs 0.74), so the prose and all the text are shown beside the
claim, not decided by it.

Both networks are saved as ordinary run directories in this chapter's folder (`runs/gpt`, `runs/lstm`):
chapter 4.4 fine-tunes the GPT, and chapter 4.5 aligns the result.
"""

from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lm2llm import ngram
from lm2llm.bias.likelihood import bootstrap_interval
from lm2llm.data import load_documents
from lm2llm.data.shards import ShardWriter
from lm2llm.finetune.tasks import make_suite, pretraining_documents
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.models import load_model
from lm2llm.tokenizer import BPETokenizer
from lm2llm.tour.framework import Chapter, ChapterContext, ChapterResult, Claim, Sample, T, Table, Text
from lm2llm.tour.plots import plt
from lm2llm.training import build_config
from lm2llm.training.run import train
from lm2llm.training.trainer import resolve_dtype

PROMPT = "The "
CONTEXT = 128
VOCAB = 512
BATCH = 8  # sequences per step, for both networks: steps × BATCH × CONTEXT tokens each
# per network; quick ≈ 4 CPU s each on one core. Full: 1,200 steps (the GPT 97 CPU s in bf16, the LSTM 63). On the
# held-out Q&A pages, where the claim against the trigram is decided, the GPT won clearly at 1,200 and at the
# half-budget re-check's 600 (0.55 and 0.58 bits per byte against 0.74), and 1,000 steps decided every verdict
# of this chapter the same; but chapter 4.4 fine-tunes this GPT, and on a 1,000-step base its half-budget
# re-check left all three of its verdicts inconclusive (measured in an idle full tour), so 1,200 stays
STEPS = {True: 150, False: 1200}
CURVE_BATCHES = 16  # at most this many batches of held-out windows for the validation curve (see `run`)
QA_RESERVE = 50  # per task, the first prompts of the suite (seed 0) stay out of pre-training: later chapters' held-out sets
LN2 = math.log(2)

NO_DIFFERENCE = 0.0  # the bits-per-byte difference two equally good models would show: each interval's null


def build_corpus(quick: bool) -> dict[str, list[str]]:
    """python-docs documents and task Q&A pages, shuffled together; every 20th document is held out."""
    docs = load_documents("python-docs", limit=300 if quick else 3000)
    qa_pages = pretraining_documents(200 if quick else 1500, reserve=QA_RESERVE, seed=0)
    mixed = docs + qa_pages
    random.Random(0).shuffle(mixed)
    pages = set(qa_pages)
    return {"train": [d for i, d in enumerate(mixed) if i % 20], "val": mixed[::20],
            "val_is_qa": [d in pages for d in mixed[::20]], "counts": [len(docs), len(qa_pages)]}


def write_shards(directory: Path, split: dict[str, list[str]]) -> tuple[BPETokenizer, dict[str, list[list[int]]]]:
    """A BPE tokenizer trained on the training documents, every document as token shards after it, and the ids."""
    tokenizer = BPETokenizer.train(split["train"], VOCAB)
    tokenizer.save(directory / "tokenizer")
    writer = ShardWriter(directory, tokenizer.vocab_size)
    ids = {name: [tokenizer.encode(doc) for doc in split[name]] for name in ("train", "val")}
    for name, docs in ids.items():
        for doc in docs:
            writer.write(name, [*doc, tokenizer.eos_id])
    writer.close(tokenizer=tokenizer.kind, tokenizer_dir="tokenizer")
    return tokenizer, ids


def per_document(nats: np.ndarray, docs: list[list[int]]) -> np.ndarray:
    """Sum per-token nats (each document's tokens and its end-of-text, in order) per document."""
    owner = np.repeat(np.arange(len(docs)), [len(d) + 1 for d in docs])
    return np.bincount(owner, weights=nats, minlength=len(docs))


def unigram_nats(ids: dict[str, list[list[int]]], vocab_size: int, eos: int) -> np.ndarray:
    """Held-out nats per document under token frequencies (add-one smoothed over the whole vocabulary)."""
    counts = np.ones(vocab_size)
    for doc in ids["train"]:
        np.add.at(counts, [*doc, eos], 1)
    logp = np.log(counts / counts.sum())
    return np.array([-logp[[*doc, eos]].sum() for doc in ids["val"]])


def ngram_nats(ids: dict[str, list[list[int]]], tokenizer: BPETokenizer) -> tuple[np.ndarray, dict]:
    """A Kneser-Ney trigram over the BPE ids (the shards' very ids, written as words: one document per sentence,
    `</s>` as end-of-text): held-out nats per document, each token unseen in training charged
    p(<unk> | context) / (number of unseen ids)."""
    def words(docs: list[list[int]]) -> list[str]:
        return [" ".join(map(str, doc)) for doc in docs]

    start = time.process_time()
    model = ngram.train(words(ids["train"]), ngram.NgramConfig(order=3))
    seconds = time.process_time() - start
    log10 = ngram.sentence_scores(model, words(ids["val"]))
    seen = {i for doc in ids["train"] for i in doc}
    unseen = max(1, tokenizer.vocab_size - len(seen) - 1)  # the end-of-text token is </s>, seen in every document
    oov = np.array([sum(i not in seen for i in doc) for doc in ids["val"]])
    nats = -log10 * math.log(10) + oov * math.log(unseen)
    opening = ngram.generate(model, "", max_words=60, temperature=0.8, seed=0)  # a document's opening
    return nats, {"seconds": seconds, "oov_tokens": int(oov.sum()), "unseen_ids": unseen, "sizes": model.sizes,
                  "sample": tokenizer.decode([int(word) for word in opening.split()])}


def network_nats(run: Path, docs: list[list[int]], eos: int) -> np.ndarray:
    """Held-out nats per document under a trained network, reading end-of-text + the documents in windows
    of CONTEXT tokens (each window starts without memory, as in training)."""
    model = load_model(run).eval()
    stream = torch.tensor([eos] + [t for doc in docs for t in (*doc, eos)])
    n = len(stream) - 1
    rows = -(-n // CONTEXT)
    inputs = torch.zeros(rows * CONTEXT, dtype=torch.long)
    targets = torch.full((rows * CONTEXT,), -100, dtype=torch.long)
    inputs[:n], targets[:n] = stream[:-1], stream[1:]
    inputs, targets = inputs.view(rows, CONTEXT), targets.view(rows, CONTEXT)
    nats = []
    with torch.no_grad():
        for i in range(0, rows, 32):
            logits, _ = model(inputs[i:i + 32])
            nats.append(F.cross_entropy(logits.float().flatten(0, 1), targets[i:i + 32].flatten(),
                                        ignore_index=-100, reduction="none"))
    return per_document(torch.cat(nats)[:n].double().numpy(), docs)


def bits_per_byte(nats: np.ndarray, utf8: np.ndarray) -> float:
    return float(nats.sum() / utf8.sum() / LN2)


def bpb_interval(nats: np.ndarray, utf8: np.ndarray) -> tuple[float, float]:
    """95 % bootstrap interval of bits per byte, resampling held-out documents."""
    return bootstrap_interval(np.stack([nats, utf8], 1), lambda r: r[:, 0].sum() / r[:, 1].sum() / LN2, resamples=1000)


def paired(better: np.ndarray, worse: np.ndarray, utf8: np.ndarray) -> tuple[tuple[float, float], bool | None]:
    """95 % interval of bpb(better) − bpb(worse) over resampled documents, and its verdict: True when wholly
    below 0, False when wholly above, None (inconclusive) when it contains 0."""
    low, high = bootstrap_interval(np.stack([better, worse, utf8], 1),
                                   lambda r: (r[:, 0].sum() - r[:, 1].sum()) / r[:, 2].sum() / LN2, resamples=1000)
    return (low, high), (True if high < 0 else False if low > 0 else None)


def model_settings(quick: bool) -> dict[str, tuple[str, dict, str]]:
    """(family, model.* overrides, optimizer) per model: about the same number of parameters for both."""
    width = 64 if quick else 128
    return {
        "LSTM": ("lstm", {"d_embed": width, "d_hidden": 2 * width, "n_layer": 1 if quick else 2,
                          "use_torch": True}, "adamw"),  # the fused kernel: the fair fight on speed
        "GPT": ("gpt", {"context_length": CONTEXT, "n_layer": 2 if quick else 4, "n_head": 4, "d_model": width},
                "adamw" if quick else "muon"),
    }


def pretrain(family: str, overrides: dict, optimizer: str, data: Path, out: Path, steps: int,
             eval_every: int, eval_batches: int, dtype: str = "float32") -> tuple[list[dict], dict]:
    """One `lm2llm train` run of `steps` steps; its validation curve (on `eval_batches` batches of random
    held-out windows), tokens seen and CPU seconds."""
    cfg = build_config({
        "model": family, "data": str(data), "out": str(out), "optimizer": optimizer,
        "block_size": CONTEXT, "batch_size": BATCH, "lr": 3e-3, "min_lr": 3e-4, "warmup_steps": max(1, steps // 10),
        "max_steps": steps, "schedule": "cosine", "clock": "cpu", "eval_every": eval_every,
        "eval_batches": eval_batches, "log_every": eval_every, "checkpoint_every": steps, "progress": False,
        "device": "cpu", "seed": 0, "sample_tokens": 0,
        "dtype": dtype,
    }, model_overrides=overrides)
    start = time.process_time()
    result, _ = train(cfg)
    return result.evals, {"steps": result.steps, "tokens": result.tokens, "cpu_seconds": time.process_time() - start,
                          "optimizer": optimizer,
                          "dtype": str(resolve_dtype(dtype, torch.device("cpu"))).removeprefix("torch.")}


def sample(run: Path, tokenizer: BPETokenizer, prompt: str, tokens: int, temperature: float) -> str:
    model = load_model(run)
    return TextGenerator(model, tokenizer).generate(
        [prompt], SamplingConfig(max_new_tokens=tokens, temperature=temperature, seed=0))[0].text


def crossing(curve: list[dict], level: float) -> int | None:
    """The first evaluated step whose validation bits per byte is below `level`, or None."""
    return next((c["step"] for c in curve if c["val_bpb"] < level), None)


def per_doubling(curve: list[dict]) -> tuple[float, int, int]:
    """How much validation bits per byte fell over the last doubling of steps: (drop, from step, to step)."""
    last = curve[-1]
    half = max((c for c in curve if c["step"] <= last["step"] / 2), key=lambda c: c["step"], default=curve[0])
    return half["val_bpb"] - last["val_bpb"], half["step"], last["step"]


def why_the_trigram_holds(quick: bool, qa_wins: bool | None, prose_wins: bool | None, overall_wins: bool | None,
                          best: str, by_source: dict[str, dict[str, float]], curve: list[dict], passes: float,
                          trigram: float) -> Text:
    """The paragraph that says why a network did not beat the trigram (on the Q&A pages in quick mode, on the
    python-docs prose in full mode), with the conditions measured."""
    if quick:
        if qa_wins:
            return T("", "")
        return T("Quick mode keeps the networks small and short, so the trigram, which counts every training token "
                 "in one pass, still wins; the full tour trains longer (the GPT with Muon) and measures why.",
                 "빠른 모드는 신경망을 작고 짧게 학습하므로, 학습 토큰을 한 번에 모두 세는 3-gram이 여전히 이긴다; 전체 "
                 "투어는 더 오래(GPT는 Muon으로) 학습하고 그 이유를 잰다.")
    if prose_wins:
        return T("", "")
    net, tri = by_source[best], by_source["trigram"]
    drop, since, until = per_doubling(curve)
    tokens = curve[-1]["step"] * BATCH * CONTEXT
    needed = tokens * 2 ** ((curve[-1]["val_bpb"] - trigram) / drop) if drop > 0 else float("inf")
    later = (T(f" Its validation curve fell by {drop:.2f} bits per byte over the last doubling of steps ({since} → "
               f"{until}); at that rate it would pass the trigram on all held-out text after about {needed:,.0f} "
               "tokens (an extrapolation).",
               f" 검증 곡선은 마지막으로 단계 수가 두 배가 되는 동안({since} → {until}) {drop:.2f} 내려갔다; 그 속도라면 약 "
               f"{needed:,.0f}토큰 뒤에 전체 검증 텍스트에서 3-gram을 앞선다(외삽).")
             if not overall_wins else T("", ""))
    return T(f"Why the trigram holds on the python-docs prose: there the next token mostly follows from the last "
             f"few, which the trigram counts exactly over every training token in one pass, while a network learns "
             f"by passes of gradient descent and has had {passes:.1f} of them. By source, {best} vs trigram in "
             f"bits/byte: python-docs prose {net['python-docs']:.2f} vs {tri['python-docs']:.2f}, Q&A pages "
             f"{net['Q&A']:.2f} vs {tri['Q&A']:.2f}.{later.en} More training is the condition under which the "
             "network would win on prose too.",
             f"python-docs 본문에서 3-gram이 버티는 이유: 본문의 다음 토큰은 대개 바로 앞 몇 토큰으로 정해지고, 3-gram은 "
             f"학습 토큰을 한 번에 모두 세어 그 짧은 문맥을 그대로 기억하지만, 신경망은 경사하강을 여러 번 거쳐 배우는데 "
             f"학습 토큰을 {passes:.1f}번 읽었을 뿐이다. 출처별 바이트당 비트({best} 대 3-gram): python-docs 본문 "
             f"{net['python-docs']:.2f} 대 {tri['python-docs']:.2f}, Q&A 페이지 {net['Q&A']:.2f} 대 "
             f"{tri['Q&A']:.2f}.{later.ko} 더 많은 학습이 본문에서도 신경망이 이길 조건이다.")


def run(ctx: ChapterContext) -> ChapterResult:
    steps = ctx.steps(STEPS[ctx.quick])
    split = build_corpus(ctx.quick)
    data, runs = ctx.out_dir / "data", ctx.out_dir / "runs"
    for stale in (data, runs):  # a forced rerun starts clean
        shutil.rmtree(stale, ignore_errors=True)
    tokenizer, ids = write_shards(data, split)
    eos = tokenizer.eos_id
    utf8 = np.array([len(doc.encode("utf-8")) for doc in split["val"]], dtype=float)
    scored = sum(len(d) + 1 for d in ids["val"])  # held-out tokens every model is charged for
    train_tokens = sum(len(d) + 1 for d in ids["train"])
    # the curves sample random held-out windows, as many as the held-out text has (so they sit on its scale) up
    # to CURVE_BATCHES batches: the verdicts score every held-out token after training (`network_nats`), the
    # curve only draws the way there
    curve_batches = min(-(-scored // (BATCH * CONTEXT)), CURVE_BATCHES)
    nats = {"unigram": unigram_nats(ids, tokenizer.vocab_size, eos)}
    nats["trigram"], counted = ngram_nats(ids, tokenizer)
    samples = [Sample(T(f"Kneser-Ney token trigram ({counted['seconds']:.1f} CPU s of counting)",
                        f"Kneser-Ney 토큰 3-gram (세는 데 CPU {counted['seconds']:.1f}초)"), counted["sample"])]
    settings = model_settings(ctx.quick)
    # full mode: bf16 autocast where the CPU computes it natively ("auto"; fp32 master weights, and the scores
    # below in fp32); at quick mode's width 64 the casts cost more than they save, so it stays in fp32
    dtype = "float32" if ctx.quick else "auto"
    every = max(1, steps // (3 if ctx.quick else 10))
    # the two networks train side by side, one per core, in full mode (`ctx.in_parallel`)
    trained = ctx.in_parallel(pretrain, [(family, overrides, optimizer, data, runs / name.lower(), steps, every,
                                          curve_batches, dtype)
                                         for name, (family, overrides, optimizer) in settings.items()])
    ctx.progress(1, 3)
    curves, stats, params = {}, {}, {}
    for name, (curve, stat) in zip(settings, trained, strict=True):
        run_dir = runs / name.lower()
        curves[name], stats[name] = curve, stat
        params[name] = sum(p.numel() for p in load_model(run_dir).parameters())
        nats[name] = network_nats(run_dir, ids["val"], eos)
        text = sample(run_dir, tokenizer, PROMPT, 60 if ctx.quick else 150, 0.8)
        samples.append(Sample(T(f"{name} after {steps} steps ({stats[name]['tokens']:,} tokens)",
                                f"{steps}단계({stats[name]['tokens']:,}토큰) 학습한 {name}"), PROMPT + text))
    ctx.progress(2, 3)
    _, held_out = make_suite(0, 1, seed=0, tasks=["korean_to_digits", "facts"])
    questions = "\n\n".join(f"Q: {r.prompt}\nA:" + sample(runs / "gpt", tokenizer, f"Q: {r.prompt}\nA:", 8, 0.0)
                             for r in held_out)
    samples.append(Sample(T("GPT continues held-out questions (greedy; the answers: "
                            + ", ".join(r.answer for r in held_out) + ")",
                            "GPT가 처음 보는 질문을 이어 쓴다 (greedy; 정답: " + ", ".join(r.answer for r in held_out) + ")"),
                          questions))
    bpb = {name: bits_per_byte(v, utf8) for name, v in nats.items()}
    qa = np.array(split["val_is_qa"])  # where each model wins: python-docs prose or the templated Q&A pages
    by_source = {name: {"python-docs": bits_per_byte(v[~qa], utf8[~qa]), "Q&A": bits_per_byte(v[qa], utf8[qa])}
                 for name, v in nats.items()}
    intervals = {name: bpb_interval(v, utf8) for name, v in nats.items()}
    tokens_seen = {"unigram": train_tokens, "trigram": train_tokens, **{n: stats[n]["tokens"] for n in settings}}

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, curve in curves.items():
        ax.plot([c["step"] * BATCH * CONTEXT for c in curve], [c["val_bpb"] for c in curve], "o-", markersize=3,
                label=name)
    for name, style in (("trigram", ":"), ("unigram", "--")):
        ax.axhline(bpb[name], color="black", linestyle=style, linewidth=0.8, label=f"{name} (held-out)")
    ax.set_xlabel("training tokens seen")
    ax.set_ylabel("validation bits per byte")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    figure = ctx.save_figure(fig, "val_loss", T("Validation loss against tokens seen, same tokens for both networks",
                                                "본 토큰 수에 따른 검증 손실 (두 신경망이 같은 토큰을 봄)"))
    labels = {"unigram": "unigram (token frequencies)", "trigram": "Kneser-Ney token trigram", "LSTM": "LSTM",
              "GPT": "GPT"}
    rows = [[labels[name], params.get(name, "-"),
             f"{stats[name]['optimizer']}, {stats[name]['dtype']}" if name in stats else "counting",
             stats[name]["steps"] if name in stats else "-", tokens_seen[name],
             round(stats[name]["cpu_seconds"], 1) if name in stats else round(counted["seconds"], 1) if name == "trigram"
             else "-", scored, round(float(nats[name].sum()) / scored, 3), round(bpb[name], 3),
             f"[{intervals[name][0]:.3f}, {intervals[name][1]:.3f}]", round(by_source[name]["python-docs"], 3),
             round(by_source[name]["Q&A"], 3)] for name in ("unigram", "trigram", *settings)]
    table = Table(T("Same tokens, same held-out text", "같은 토큰, 같은 검증 텍스트"),
                  ["model", "params", "optimizer", "steps", "training tokens seen", "CPU s", "held-out tokens scored",
                   "nats/token", "bits/byte", "95 % interval", "bits/byte python-docs", "bits/byte Q&A pages"], rows)

    vs_unigram, gpt_beats_unigram = paired(nats["GPT"], nats["unigram"], utf8)
    vs_lstm, gpt_beats_lstm = paired(nats["GPT"], nats["LSTM"], utf8)
    best = min(settings, key=lambda n: bpb[n])
    vs_trigram, neural_beats_trigram = paired(nats[best], nats["trigram"], utf8)
    # the claim is decided on the Q&A pages, where an answer is read from its question, further back than the
    # trigram's two tokens of context (the n-gram's limit the guide names); the prose and all the text are reported
    best_qa = min(settings, key=lambda n: by_source[n]["Q&A"])
    vs_trigram_qa, neural_beats_trigram_qa = paired(nats[best_qa][qa], nats["trigram"][qa], utf8[qa])
    best_prose = min(settings, key=lambda n: by_source[n]["python-docs"])
    vs_trigram_prose, neural_beats_trigram_prose = paired(nats[best_prose][~qa], nats["trigram"][~qa], utf8[~qa])
    passes_at = crossing(curves["GPT"], bpb["trigram"])
    where = (T(f"the GPT's validation curve passes the trigram at step {passes_at} "
               f"({passes_at * BATCH * CONTEXT:,} tokens seen)",
               f"GPT의 검증 곡선은 {passes_at}단계({passes_at * BATCH * CONTEXT:,}토큰)에서 3-gram을 앞선다")
             if passes_at else
             T(f"the GPT's validation curve never passes the trigram within {steps} steps "
               f"({stats['GPT']['tokens']:,} tokens, {stats['GPT']['tokens'] / train_tokens:.1f} passes over the "
               "training tokens; the trigram counts every training token once)",
               f"GPT의 검증 곡선은 {steps}단계({stats['GPT']['tokens']:,}토큰, 학습 토큰 {stats['GPT']['tokens'] / train_tokens:.1f}번 "
               "읽음) 안에 3-gram을 앞서지 못한다 (3-gram은 학습 토큰을 모두 한 번씩 센다)"))

    def diff(interval: tuple[float, float]) -> str:
        return f"[{interval[0]:+.3f}, {interval[1]:+.3f}]"

    claims = [
        Claim(T("Predicting the next token of raw text, with no labels, teaches a model the language: its loss falls "
                "below that of a model that only knows how often each token occurs.",
                "레이블 없이 원문 텍스트의 다음 토큰을 맞히는 것만으로 모델은 언어를 배운다: 손실이 토큰 빈도만 아는 "
                "모델보다 낮아진다."),
              T(f"GPT {bpb['GPT']:.3f} vs unigram {bpb['unigram']:.3f} bits/byte on the same {scored:,} held-out "
                f"tokens; difference 95 % interval {diff(vs_unigram)}",
                f"같은 검증 토큰 {scored:,}개에서 바이트당 비트 GPT {bpb['GPT']:.3f}, 유니그램 {bpb['unigram']:.3f}; "
                f"차이의 95 % 구간 {diff(vs_unigram)}"),
              gpt_beats_unigram, chance=NO_DIFFERENCE, interval=vs_unigram),
        Claim(T("Trained on the same tokens, the Transformer learns more than the recurrent network.",
                "같은 토큰으로 학습하면 Transformer가 순환 신경망보다 더 많이 배운다."),
              T(f"after {stats['GPT']['tokens']:,} tokens each: GPT {bpb['GPT']:.3f} vs LSTM {bpb['LSTM']:.3f} "
                f"bits/byte, difference 95 % interval {diff(vs_lstm)} (CPU s: GPT {stats['GPT']['cpu_seconds']:.0f}, "
                f"LSTM {stats['LSTM']['cpu_seconds']:.0f})",
                f"각각 {stats['GPT']['tokens']:,}토큰 학습 후 바이트당 비트 GPT {bpb['GPT']:.3f}, LSTM {bpb['LSTM']:.3f}, "
                f"차이의 95 % 구간 {diff(vs_lstm)} (CPU 초: GPT {stats['GPT']['cpu_seconds']:.0f}, "
                f"LSTM {stats['LSTM']['cpu_seconds']:.0f})"),
              gpt_beats_lstm, chance=NO_DIFFERENCE, interval=vs_lstm),
        Claim(T("Where the next token depends on text further back than an n-gram's fixed window, a neural language "
                "model predicts held-out text better than a smoothed n-gram model: on the Q&A pages, whose answers "
                "are read from their questions.",
                "다음 토큰이 n-gram의 고정된 창보다 먼 텍스트에 달려 있는 곳에서는 신경망 언어 모델이 평활화한 n-gram "
                "모델보다 처음 보는 텍스트를 더 잘 예측한다: 답을 질문에서 읽어 내야 하는 Q&A 페이지에서."),
              T(f"on the {int(qa.sum())} held-out Q&A pages: best network there ({best_qa}) "
                f"{by_source[best_qa]['Q&A']:.3f} vs Kneser-Ney token trigram {by_source['trigram']['Q&A']:.3f} "
                f"bits/byte, difference 95 % interval {diff(vs_trigram_qa)}. Not claimed, shown: on the "
                f"{int((~qa).sum())} python-docs documents, where the next token mostly follows from the last few, "
                f"{best_prose} {by_source[best_prose]['python-docs']:.3f} vs {by_source['trigram']['python-docs']:.3f} "
                f"{diff(vs_trigram_prose)}; on all held-out text {best} {bpb[best]:.3f} vs {bpb['trigram']:.3f} "
                f"{diff(vs_trigram)} (held-out tokens unseen in training: {counted['oov_tokens']}, charged in full); "
                f"{where.en}",
                f"학습에 쓰지 않은 Q&A 페이지 {int(qa.sum())}개에서 바이트당 비트: 그곳의 최고 신경망({best_qa}) "
                f"{by_source[best_qa]['Q&A']:.3f}, Kneser-Ney 토큰 3-gram {by_source['trigram']['Q&A']:.3f}, 차이의 "
                f"95 % 구간 {diff(vs_trigram_qa)}. 주장하지 않고 보여 주기만 한다: 다음 토큰이 대개 바로 앞 몇 토큰으로 "
                f"정해지는 python-docs 문서 {int((~qa).sum())}개에서는 {best_prose} "
                f"{by_source[best_prose]['python-docs']:.3f} 대 {by_source['trigram']['python-docs']:.3f} "
                f"{diff(vs_trigram_prose)}; 전체 검증 텍스트에서는 {best} {bpb[best]:.3f} 대 {bpb['trigram']:.3f} "
                f"{diff(vs_trigram)} (학습에 없던 검증 토큰 {counted['oov_tokens']}개도 온전히 계산); {where.ko}"),
              neural_beats_trigram_qa, chance=NO_DIFFERENCE, interval=vs_trigram_qa),
    ]
    ctx.progress(3, 3)
    n_docs, n_qa = split["counts"]
    budget = why_the_trigram_holds(ctx.quick, neural_beats_trigram_qa, neural_beats_trigram_prose, neural_beats_trigram,
                                   best, by_source, curves[best], stats[best]["tokens"] / train_tokens, bpb["trigram"])
    summary = T(f"{n_docs} python-docs documents + {n_qa} Q&A pages as {train_tokens:,} BPE training tokens; "
                f"{steps} steps ({stats['GPT']['tokens']:,} tokens) for each network. Bits per byte on the same "
                f"{scored:,} held-out tokens: unigram {bpb['unigram']:.2f}, token trigram {bpb['trigram']:.2f}, "
                f"LSTM {bpb['LSTM']:.2f}, GPT {bpb['GPT']:.2f}. {budget.en + ' ' if budget.en else ''}The GPT is saved for "
                "fine-tuning (4.4).",
                f"python-docs 문서 {n_docs}개 + Q&A 페이지 {n_qa}개 = BPE 학습 토큰 {train_tokens:,}개; 신경망마다 "
                f"{steps}단계({stats['GPT']['tokens']:,}토큰). 같은 검증 토큰 {scored:,}개에서 바이트당 비트: 유니그램 "
                f"{bpb['unigram']:.2f}, 토큰 3-gram {bpb['trigram']:.2f}, LSTM {bpb['LSTM']:.2f}, GPT {bpb['GPT']:.2f}. "
                f"{budget.ko + ' ' if budget.ko else ''}GPT는 미세조정(4.4)을 위해 저장한다.")
    return ChapterResult(summary, claims=claims, tables=[table], figures=[figure], samples=samples,
                         metrics={"steps": steps, "tokens_per_step": BATCH * CONTEXT, "curves": curves, "stats": stats,
                                  "bpb": bpb, "intervals": intervals, "bpb_by_source": by_source,
                                  "vs_trigram": {"Q&A": vs_trigram_qa, "python-docs": vs_trigram_prose, "all": vs_trigram}, "held_out_tokens": scored,
                                  "train_tokens": train_tokens, "gpt_passes_trigram_at_step": passes_at,
                                  "ngram": {**{k: v for k, v in counted.items() if k != "sample"},
                                            "val_bpb": bpb["trigram"]},
                                  "corpus": {"python_docs": n_docs, "qa_pages": n_qa, "qa_reserve": QA_RESERVE},
                                  "data": "data", "runs": {name: f"runs/{name.lower()}" for name in settings}})


# its re-check runs in the runner's background (idle cores only), not beside the main run (`recheck_alongside`):
# four one-thread trainings sharing two cores cost more CPU each, and main and re-check together took 180 s
# against 166 one after the other (idle full tours, 1,200 steps)
CHAPTER = Chapter("4.3", T("Pre-training", "사전학습"), run, rechecks=True)
