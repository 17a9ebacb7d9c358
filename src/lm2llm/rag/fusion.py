"""Reciprocal rank fusion (Cormack, Clarke & Büttcher, 2009): score(d) = Σ_rankings 1 / (k + rank(d)).

BM25 scores and cosines live on different scales, so adding them needs a weight nobody can choose once
for all corpora; ranks need none. k = 60 is the paper's constant: it keeps one ranking's first place from
outvoting agreement lower down. Ranks start at 1; a passage missing from a ranking adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """(id, fused score) best first; ties go to the lower id."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[int(item)] = fused.get(int(item), 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda pair: (-pair[1], pair[0]))
