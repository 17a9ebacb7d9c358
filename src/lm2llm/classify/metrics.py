"""Accuracy, macro-F1 and the confusion matrix, from scratch (checked against scikit-learn in the tests).

Macro-F1 averages the per-label F1 scores with equal weight, so a classifier that ignores a rare label
scores low even when its accuracy looks fine; a label never predicted and never present scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], n_labels: int) -> list[list[int]]:
    """matrix[t][p] = how many texts of label t were predicted as p."""
    matrix = [[0] * n_labels for _ in range(n_labels)]
    for t, p in zip(truth, predicted, strict=True):
        matrix[t][p] += 1
    return matrix


def classification_report(truth: Sequence[int], predicted: Sequence[int], names: Sequence[str]) -> dict:
    """accuracy, macro_f1, per-label precision/recall/F1/support and the confusion matrix."""
    matrix = confusion_matrix(truth, predicted, len(names))
    per_label = {}
    for i, name in enumerate(names):
        tp = matrix[i][i]
        predicted_i = sum(row[i] for row in matrix)
        actual_i = sum(matrix[i])
        precision = tp / predicted_i if predicted_i else 0.0
        recall = tp / actual_i if actual_i else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[name] = {"precision": precision, "recall": recall, "f1": f1, "support": actual_i}
    total = len(truth)
    return {
        "examples": total,
        "accuracy": sum(matrix[i][i] for i in range(len(names))) / total if total else 0.0,
        "macro_f1": sum(v["f1"] for v in per_label.values()) / len(names),
        "per_label": per_label,
        "labels": list(names),
        "confusion": matrix,
    }
