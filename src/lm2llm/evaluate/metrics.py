"""Metrics as lm-evaluation-harness defines them, with their standard errors and a chance-centred score.

- `acc`: the choice with the highest log-likelihood is the gold one; `acc_norm`: the same after dividing
  each log-likelihood by the choice's length in characters (without the delimiter); `acc_mutual_info`:
  after subtracting the choice's log-likelihood with no context.
- `exact_match`: prediction == reference (lm-eval's `exact_match` after its optional normalisations);
  `f1`: SQuAD's token-overlap F1 between a prediction and a reference.
- `perplexity` (word/byte, lm-eval's `weighted_perplexity`) and `bits_per_byte` = −Σ ll / Σ bytes / ln 2,
  aggregated over the whole set (not averaged per document); bits per character divides by characters.
- `stderr`: lm-eval's `mean_stderr` (sample standard deviation / √n) for per-item means; for the
  corpus-level ratios a bootstrap over documents (lm-eval reports none for bits per byte).
- `centred` = (score − chance) / (1 − chance), as nanochat's CORE reports, with a 95 % interval
  (normal approximation: ±1.96 stderr, rescaled the same way).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

from lm2llm.stats import Z95


def mean_stderr(values: Sequence[float]) -> float:
    """lm-eval's `mean_stderr`: the sample standard deviation (n − 1) over √n."""
    n = len(values)
    if n < 2:
        return float("nan")
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1) / math.sqrt(n))


def multiple_choice(lls: Sequence[float], choices: Sequence[str], gold: int,
                    unconditional: Sequence[float] | None = None) -> dict[str, float]:
    """acc, acc_norm (and acc_mutual_info given the unconditional log-likelihoods) for one question.

    np.argmax picks the first of equal scores, as lm-eval does."""
    scores = np.asarray(lls, dtype=np.float64)
    lengths = np.asarray([float(len(c)) for c in choices])
    out = {"acc": float(np.argmax(scores) == gold), "acc_norm": float(np.argmax(scores / lengths) == gold)}
    if unconditional is not None:
        out["acc_mutual_info"] = float(np.argmax(scores - np.asarray(unconditional)) == gold)
    return out


def exact_match(prediction: str, reference: str, *, ignore_case: bool = False, ignore_punctuation: bool = False,
                regexes_to_ignore: Sequence[str] = ()) -> float:
    for pattern in regexes_to_ignore:
        prediction, reference = re.sub(pattern, "", prediction), re.sub(pattern, "", reference)
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    if ignore_punctuation:
        table = str.maketrans("", "", string.punctuation)
        prediction, reference = prediction.translate(table), reference.translate(table)
    return float(prediction == reference)


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, no English articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 between a prediction and one reference."""
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((Counter(predicted) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def bits_per_unit(logprobs: Sequence[float], units: Sequence[int]) -> float:
    """−Σ log-likelihood / Σ units / ln 2: bits per byte (units = UTF-8 bytes) or per character."""
    return -float(np.sum(logprobs)) / float(np.sum(units)) / math.log(2)


def weighted_perplexity(logprobs: Sequence[float], units: Sequence[int]) -> float:
    """exp(−Σ ll / Σ units): lm-eval's word_perplexity / byte_perplexity."""
    return math.exp(-float(np.sum(logprobs)) / float(np.sum(units)))


def bootstrap_stderr(logprobs: Sequence[float], units: Sequence[int], statistic=bits_per_unit,
                     iterations: int = 1000, seed: int = 1234) -> float:
    """Standard deviation of a corpus-level ratio over documents resampled with replacement."""
    ll, size = np.asarray(logprobs, dtype=np.float64), np.asarray(units, dtype=np.float64)
    if len(ll) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ll), size=(iterations, len(ll)))
    values = [statistic(ll[p], size[p]) for p in picks]
    return float(np.std(values, ddof=1))


def centred(score: float, chance: float) -> float:
    """(score − chance) / (1 − chance): 0 at chance, 1 when perfect (nanochat's CORE centring)."""
    return (score - chance) / (1 - chance)


def interval95(score: float, stderr: float) -> tuple[float, float]:
    return score - Z95 * stderr, score + Z95 * stderr
