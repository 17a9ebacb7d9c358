"""How well a safety classifier filters: precision, recall and false-positive rate with Wilson intervals,
and how its errors split across the groups the texts target (the hate-speech set's bias labels).

Recall = share of unsafe lines flagged ("catches X % of hateful lines"); false-positive rate = share of safe
lines flagged ("at Y % false positives"); precision = share of flagged lines that were unsafe. A classifier
that flags everything has recall 1 and precision = the unsafe share: that share is the chance level.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from lm2llm.safety.classifier import SafetyClassifier
from lm2llm.safety.data import SafetySet
from lm2llm.stats import wilson_interval


@dataclass
class Rate:
    hits: int
    n: int
    value: float
    interval: tuple[float, float]


def rate(hits: int, n: int) -> Rate:
    return Rate(hits, n, hits / n if n else 0.0, wilson_interval(hits, n))


@dataclass
class FilterScore:
    classifier: str
    examples: int
    unsafe_share: float  # the precision of flagging everything
    recall: Rate
    false_positive_rate: Rate
    precision: Rate
    f1: float

    def to_dict(self) -> dict:
        return asdict(self)


def score_flags(name: str, unsafe: list[bool], flagged: list[bool]) -> FilterScore:
    tp = sum(u and f for u, f in zip(unsafe, flagged, strict=True))
    fp = sum(f and not u for u, f in zip(unsafe, flagged, strict=True))
    positives, flags = sum(unsafe), sum(flagged)
    recall, precision = rate(tp, positives), rate(tp, flags)
    f1 = 2 * recall.value * precision.value / (recall.value + precision.value) if tp else 0.0
    return FilterScore(name, len(unsafe), positives / len(unsafe) if unsafe else 0.0, recall,
                       rate(fp, len(unsafe) - positives), precision, f1)


def evaluate_filter(classifier: SafetyClassifier, data: SafetySet) -> tuple[FilterScore, list[bool]]:
    """The score of `classifier` on `data` and its flag for every line."""
    flagged = [v.flagged for v in classifier.check(data.texts)]
    return score_flags(classifier.name, data.unsafe, flagged), flagged


def error_split(data: SafetySet, flagged: list[bool]) -> dict[str, dict]:
    """Per target group: the share of its unsafe lines missed and of its safe lines wrongly flagged."""
    out = {}
    for group in sorted(set(data.groups)):
        rows = [i for i, g in enumerate(data.groups) if g == group]
        unsafe = [i for i in rows if data.unsafe[i]]
        safe = [i for i in rows if not data.unsafe[i]]
        out[group] = {"lines": len(rows),
                      "missed": asdict(rate(sum(not flagged[i] for i in unsafe), len(unsafe))),
                      "false_alarms": asdict(rate(sum(flagged[i] for i in safe), len(safe)))}
    return out
