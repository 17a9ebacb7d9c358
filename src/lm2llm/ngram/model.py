"""The n-gram language model API: train, evaluate, generate, save and load.

A model predicts P(w_n | w_1 .. w_{n-1}) from the last N-1 words only. Kneser-Ney models are backoff
models saved as ARPA (what KenLM loads); the count-based estimators are saved as their counts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lm2llm.errors import UserError
from lm2llm.ngram.arpa import read_arpa, write_arpa
from lm2llm.ngram.backoff import BackoffModel
from lm2llm.ngram.counts import MAX_ORDER, NgramCounts
from lm2llm.ngram.estimators.counting import AdditiveModel, StupidBackoffModel
from lm2llm.ngram.estimators.kneser_ney import LMPLZ_FALLBACK, estimate_kneser_ney
from lm2llm.ngram.vocab import BOS_ID, EOS_ID, UNK_ID, Vocabulary, check_kind, detokenize, tokenize
from lm2llm.runs import atomic_write_json, output_dir, read_json

ESTIMATORS = ("kneser-ney", "mle", "add-k", "stupid-backoff")
LanguageModel = BackoffModel | AdditiveModel | StupidBackoffModel


@dataclass
class NgramConfig:
    order: int = 3
    estimator: str = "kneser-ney"
    k: float = 1.0  # add-k only
    tokenize: str = "whitespace"  # KenLM's convention; "words" splits punctuation off; "bpe:DIR" uses BPE ids
    min_count: int = 1  # rarer words become <unk>
    max_vocab: int | None = None  # keep only the most frequent words (specials included); the rest become <unk>
    discount_fallback: bool = False  # lmplz --discount_fallback: 0.5 1 1.5 where the closed form fails

    def __post_init__(self) -> None:
        if not 1 <= self.order <= MAX_ORDER:
            raise UserError(f"must be 1..{MAX_ORDER}, got {self.order}", where="order")
        if self.estimator not in ESTIMATORS:
            raise UserError(f"unknown estimator {self.estimator!r}", where="estimator", hint=f"one of {', '.join(ESTIMATORS)}")
        check_kind(self.tokenize)
        if self.k <= 0 and self.estimator == "add-k":
            raise UserError(f"must be > 0, got {self.k}", where="k")
        if self.max_vocab is not None and self.max_vocab < 4:
            raise UserError(f"must be >= 4 (three specials and a word), got {self.max_vocab}", where="max_vocab")
        if self.min_count < 1:
            raise UserError(f"must be >= 1, got {self.min_count}", where="min_count")


@dataclass
class NgramModel:
    config: NgramConfig
    lm: LanguageModel

    @property
    def vocab(self) -> Vocabulary:
        return self.lm.vocab

    @property
    def sizes(self) -> list[int]:
        """Number of n-grams per order."""
        table = self.lm if isinstance(self.lm, BackoffModel) else self.lm.counts
        return [len(keys) for keys in table.keys]

    def encode(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.vocab.encode(tokenize(lines, self.config.tokenize))


def count(lines: list[str], config: NgramConfig) -> NgramCounts:
    sentences = tokenize(lines, config.tokenize)
    if not any(sentences):
        raise UserError("the training text has no words", where="training text")
    vocab = Vocabulary.build(sentences, min_count=config.min_count, max_size=config.max_vocab)
    tokens, starts = vocab.encode(sentences)
    return NgramCounts.from_ids(vocab, tokens, starts, config.order)


def train(lines: list[str], config: NgramConfig, counts: NgramCounts | None = None) -> NgramModel:
    """Count `lines` (one sentence each) and estimate the model named by `config`."""
    counts = counts if counts is not None else count(lines, config)
    if config.estimator == "kneser-ney":
        lm, _ = estimate_kneser_ney(counts, LMPLZ_FALLBACK if config.discount_fallback else None)
    elif config.estimator == "stupid-backoff":
        lm = StupidBackoffModel(counts)
    else:
        lm = AdditiveModel(counts, k=config.k if config.estimator == "add-k" else 0.0)
    return NgramModel(config, lm)


@dataclass
class Evaluation:
    sentences: int
    tokens: int  # words + one </s> per sentence: what perplexity divides by
    oov: int
    log10_prob: float
    perplexity: float
    zero_probability_share: float  # events the model gives probability 0 (MLE's failure)


def sentence_scores(model: NgramModel, lines: list[str]) -> np.ndarray:
    """log10 P(sentence) per line with `</s>` scored and `<s>` not: KenLM's `Model.score(s, bos=True, eos=True)`."""
    tokens, starts = model.encode(lines)
    logp = model.lm.token_log10_probs(tokens, starts)
    sentence = np.cumsum(tokens == BOS_ID)[tokens != BOS_ID] - 1
    return np.bincount(sentence, weights=logp, minlength=int((tokens == BOS_ID).sum()))


def evaluate(model: NgramModel, lines: list[str]) -> Evaluation:
    """Perplexity = 10^(-Σ log10 p / (words + one </s> per sentence)), OOV words scored as <unk>."""
    tokens, starts = model.encode(lines)
    logp = model.lm.token_log10_probs(tokens, starts)
    finite = np.isfinite(logp)
    total = float(logp.sum()) if finite.all() else float("-inf")
    n = len(logp)
    return Evaluation(
        sentences=int((tokens == BOS_ID).sum()),
        tokens=n,
        oov=int((tokens == UNK_ID).sum()),
        log10_prob=total,
        perplexity=float(10 ** (-total / n)) if n and finite.all() else float("inf"),
        zero_probability_share=float(1 - finite.mean()) if n else 0.0,
    )


def generate(model: NgramModel, prompt: str = "", *, max_words: int = 30, temperature: float = 1.0,
             top_k: int = 0, seed: int | None = None) -> str:
    """Sample words after `prompt` until `</s>` or `max_words`, through the shared sampler of lm2llm.inference."""
    import torch

    from lm2llm.inference.sampling import Sampler, SamplingConfig

    if isinstance(model.lm, StupidBackoffModel):
        raise UserError("stupid backoff gives scores, not probabilities, so it cannot be sampled",
                        where="estimator", hint="train with kneser-ney, mle or add-k to generate")
    vocab = model.vocab
    words = tokenize([prompt], model.config.tokenize)[0]
    context = [BOS_ID] + [vocab.index.get(w, UNK_ID) for w in words]
    sampler = Sampler(SamplingConfig(max_new_tokens=max_words, temperature=temperature, top_k=top_k, seed=seed),
                      batch_size=1, vocab_size=len(vocab))
    out: list[str] = []
    for _ in range(max_words):
        logits = torch.from_numpy(model.lm.next_log10_probs(context) * np.log(10.0)).unsqueeze(0)
        logits[0, BOS_ID] = -float("inf")
        if not torch.isfinite(logits).any():
            break  # MLE with a context never seen in training: nothing can follow
        token = int(sampler(logits).tokens[0])
        if token == EOS_ID:
            break
        out.append(vocab.words[token])
        context.append(token)
    return detokenize(out, model.config.tokenize)


# --- saving: a run directory, built under a temporary name and renamed -------------------------------

ARPA_FILE, COUNTS_FILE, VOCAB_FILE, CONFIG_FILE = "model.arpa", "counts.npz", "vocab.json", "config.json"


def save(model: NgramModel, directory: str | os.PathLike, *, force: bool = False) -> Path:
    """Write `config.json` and `model.arpa` (Kneser-Ney) or `counts.npz` + `vocab.json` (the others); an
    earlier n-gram run in `directory` is replaced only with `force` (see `lm2llm.runs.check_out`)."""
    target = Path(directory)
    with output_dir(target, "ngram", force=force) as build:
        atomic_write_json(build / CONFIG_FILE, {"stage": "ngram", "config": asdict(model.config)})
        if isinstance(model.lm, BackoffModel):
            write_arpa(model.lm, build / ARPA_FILE)
        else:
            counts = model.lm.counts
            arrays = {f"keys{n}": counts.keys[n - 1] for n in range(1, counts.order + 1)}
            arrays |= {f"counts{n}": counts.counts[n - 1] for n in range(1, counts.order + 1)}
            arrays |= {f"suffixes{n}": counts.suffixes[n - 1] for n in range(1, counts.order + 1)}
            with open(build / COUNTS_FILE, "wb") as handle:
                np.savez(handle, **arrays)
            atomic_write_json(build / VOCAB_FILE, counts.vocab.words)
    return target


def load(directory: str | os.PathLike) -> NgramModel:
    path = Path(directory)
    meta = read_json(path / CONFIG_FILE)
    if meta.get("stage") != "ngram":
        raise UserError("not an n-gram model directory", where=str(path / CONFIG_FILE))
    config = NgramConfig(**meta["config"])
    if config.estimator == "kneser-ney":
        return NgramModel(config, read_arpa(path / ARPA_FILE))
    vocab = Vocabulary(json.loads((path / VOCAB_FILE).read_text(encoding="utf-8")))
    with np.load(path / COUNTS_FILE, allow_pickle=False) as data:
        grab = [[data[f"{name}{n}"] for n in range(1, config.order + 1)] for name in ("keys", "counts", "suffixes")]
    counts = NgramCounts(vocab, *grab)
    return train([], config, counts=counts)
