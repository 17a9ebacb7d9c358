"""Choosing few-shot examples: k at random (seeded per question), or the k most similar to the question.

Similarity is the cosine of all-MiniLM-L6-v2 embeddings (`lm2llm.embeddings`), the usual choice of
example selectors: a question about converting km gets km examples. The pool is the task's training
split, never its test questions.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch


def random_shots(pool: Sequence[tuple[str, str]], k: int, n_questions: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    rng = random.Random(f"lm2llm-shots/{seed}")
    return [rng.sample(list(pool), min(k, len(pool))) for _ in range(n_questions)]


def similar_shots(pool: Sequence[tuple[str, str]], k: int, questions: Sequence[str]) -> list[list[tuple[str, str]]]:
    """For each question, the k pool examples nearest by cosine, the nearest last (closest to the question)."""
    from lm2llm.embeddings import default_encoder

    if not pool or k == 0:
        return [[] for _ in questions]
    encoder = default_encoder()
    with torch.inference_mode():
        similarity = encoder.encode(list(questions)) @ encoder.encode([q for q, _ in pool]).T
    best = similarity.topk(min(k, len(pool)), dim=1).indices.tolist()
    return [[pool[i] for i in reversed(row)] for row in best]
