"""Retrieval over python-docs: index build and query latency (p50/p99) for BM25 and dense, and our BM25
against `rank_bm25` and `bm25s` in the same run, on the same chunks and tokens.

Goal (issue 22): our BM25 within 2x of bm25s at query time, identical rankings (top-10 equal to bm25s
with Lucene's idf up to exact ties, which bm25s orders its own way and scores in float32; scores equal to
rank_bm25 within 1e-9). Queries are the first sentence of held-out
chunks' neighbours, i.e. real documentation prose. Dense embeds every chunk with MiniLM (our BERT);
`--dense-limit N` embeds only the first N chunks on a slow machine (the figures say which).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import peak_rss_mb, write_result  # noqa: E402

from lm2llm.rag.bm25 import BM25  # noqa: E402
from lm2llm.rag.chunking import split_sentences  # noqa: E402
from lm2llm.rag.dense import dense_top_k, embed  # noqa: E402
from lm2llm.rag.index import RagIndex  # noqa: E402
from lm2llm.rag.sources import read_sources  # noqa: E402
from lm2llm.rag.terms import content_terms  # noqa: E402


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "n": len(ms)}


def timed(fn, queries) -> tuple[list[float], list]:
    times, results = [], []
    for q in queries:
        start = time.perf_counter()
        results.append(fn(q))
        times.append(time.perf_counter() - start)
    return times, results


def equal_up_to_ties(ours: BM25, query: list[str], mine: list[int], theirs: list[int]) -> bool:
    """Same top-10 except documents whose score ties with the 10th best (relative 1e-5: float32)."""
    scores = ours.scores(query)
    kth = np.sort(scores)[::-1][min(9, len(scores) - 1)]
    return all(abs(scores[d] - kth) <= 1e-5 * max(kth, 1e-12) for d in set(mine) ^ set(theirs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--dense-limit", type=int, default=None)
    args = parser.parse_args()

    import bm25s
    import rank_bm25

    documents = read_sources(["python-docs"])
    start = time.perf_counter()
    index = RagIndex.build(documents, dense=False, sources=["python-docs"])
    chunk_seconds = time.perf_counter() - start
    chunks = [c.text for c in index.chunks]
    tokens = [content_terms(c) for c in chunks]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(chunks), size=args.queries, replace=False)
    queries = [s[0].text for s in (split_sentences(chunks[i]) for i in picks) if s]
    query_tokens = [content_terms(q) for q in queries]

    build = {}
    start = time.perf_counter()
    ours = BM25.fit(tokens, idf_kind="lucene")
    build["ours"] = time.perf_counter() - start
    start = time.perf_counter()
    okapi = rank_bm25.BM25Okapi(tokens)
    build["rank_bm25"] = time.perf_counter() - start
    start = time.perf_counter()
    lucene = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    lucene.index(tokens, show_progress=False)
    build["bm25s"] = time.perf_counter() - start
    ours_okapi = BM25.fit(tokens)

    t_ours, top_ours = timed(lambda q: ours.top_k(q, 10)[0].tolist(), query_tokens)
    t_bm25s, top_bm25s = timed(lambda q: lucene.retrieve([q], k=10, show_progress=False)[0][0].tolist(), query_tokens)
    t_rank, scores_rank = timed(okapi.get_scores, query_tokens[:50])  # rank_bm25 scores every document per term
    max_diff = max(float(np.abs(ours_okapi.scores(q) - s).max()) for q, s in zip(query_tokens[:50], scores_rank,
                                                                                     strict=True))
    # Identical top-10 up to ties: bm25s scores in float32 and orders equal scores its own way, so a
    # document may differ only if its score equals the 10th best (within float32 precision).
    same_order = sum(a == b for a, b in zip(top_ours, top_bm25s, strict=True))
    same_up_to_ties = sum(equal_up_to_ties(ours, q, a, b) for q, a, b in zip(query_tokens, top_ours, top_bm25s,
                                                                               strict=True))

    dense_n = len(chunks) if args.dense_limit is None else min(args.dense_limit, len(chunks))
    start = time.perf_counter()
    embeddings = embed(chunks[:dense_n])
    dense_build = time.perf_counter() - start
    t_dense, _ = timed(lambda q: dense_top_k(embeddings, q, 10), queries[:100])

    figures = {
        "corpus": {"documents": len(documents), "chunks": len(chunks), "terms": len(ours.vocab),
                   "chunking_s": chunk_seconds},
        "bm25_build_s": build["ours"], "bm25_query": percentiles(t_ours),
        "dense_build_s": dense_build, "dense_chunks": dense_n, "dense_chunks_per_s": dense_n / dense_build,
        "dense_query": percentiles(t_dense),
        "rank_bm25_max_abs_score_diff": max_diff,
        "top10_equal_to_bm25s": {"up_to_ties": same_up_to_ties, "same_order": same_order, "queries": len(top_ours)},
        "peak_rss_mb": peak_rss_mb(),
    }
    peers = {"bm25s_build_s": build["bm25s"], "bm25s_query": percentiles(t_bm25s),
             "rank_bm25_build_s": build["rank_bm25"], "rank_bm25_query": percentiles(t_rank)}
    ratios = {"query_p50_ours_over_bm25s": percentiles(t_ours)["p50_ms"] / percentiles(t_bm25s)["p50_ms"],
              "build_ours_over_bm25s": build["ours"] / build["bm25s"],
              "query_p50_rank_bm25_over_ours": percentiles(t_rank)["p50_ms"] / percentiles(t_ours)["p50_ms"]}
    write_result("rag", figures, peers, ratios,
                 notes="one process, torch threads as set; the machine was shared with other jobs when measured")


if __name__ == "__main__":
    main()
