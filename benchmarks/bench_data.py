"""Data pipeline: `data prepare` throughput (MB/s) and peak memory on python-code, and near-dedup time per MB,
ours (numpy MinHash + LSH) against datasketch (MinHash + MinHashLSH) on the same word 5-gram shingles."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import measure_in_subprocess, skip, write_result  # noqa: E402

from lm2llm.data import load_documents  # noqa: E402
from lm2llm.data.dedup import WORD_TOKEN, NearDuplicateIndex, jaccard, shingles  # noqa: E402

SOURCE = "python-code"
THRESHOLD, NUM_PERM, SHINGLE = 0.8, 128, 5

PREPARE = f"""
import json, resource, tempfile, time
from pathlib import Path
from lm2llm.data.embedded import stdlib_files
from lm2llm.data.prepare import PrepareConfig, prepare
base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
size = sum(p.stat().st_size for p in stdlib_files())
with tempfile.TemporaryDirectory() as tmp:
    start = time.perf_counter()
    stats = prepare(PrepareConfig({SOURCE!r}), Path(tmp) / "out")
    seconds = time.perf_counter() - start
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"input_mb": size / 1e6, "seconds": seconds, "peak_rss_mb": peak_mb, "rss_after_imports_mb": base_mb,
                  "documents_out": stats.funnel.out, "tokens": stats.tokens}}))
"""


def ours(documents: list[str]) -> tuple[float, dict[int, int]]:
    """Seconds, and {removed document: kept document} for each near duplicate found."""
    index = NearDuplicateIndex(THRESHOLD, NUM_PERM, "word", SHINGLE)
    start = time.perf_counter()
    pairs = {}
    for i, text in enumerate(documents):
        if (match := index.match(text, str(i))) is not None:
            pairs[i] = int(match[0])
    return time.perf_counter() - start, pairs


def share_truly_similar(documents: list[str], pairs: dict[int, int]) -> float:
    """Share of reported pairs whose exact Jaccard similarity reaches the threshold (MinHash only estimates it)."""
    hits = [jaccard(shingles(documents[a]), shingles(documents[b])) >= THRESHOLD for a, b in pairs.items()]
    return sum(hits) / len(hits) if hits else 1.0


def datasketch_peer(documents: list[str]) -> tuple[float, dict[int, int]]:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    kept: dict[str, MinHash] = {}
    start = time.perf_counter()
    pairs = {}
    for i, text in enumerate(documents):
        tokens = WORD_TOKEN.findall(text.lower())
        grams = {" ".join(tokens[j : j + SHINGLE]) for j in range(max(1, len(tokens) - SHINGLE + 1))}
        signature = MinHash(num_perm=NUM_PERM, scheme="legacy")
        signature.update_batch([g.encode() for g in grams])
        match = next((key for key in sorted(lsh.query(signature)) if signature.jaccard(kept[key]) >= THRESHOLD), None)
        if match is not None:
            pairs[i] = int(match)
            continue
        lsh.insert(str(i), signature)
        kept[str(i)] = signature
    return time.perf_counter() - start, pairs


def main() -> None:
    prepared = measure_in_subprocess(PREPARE)
    documents = load_documents(SOURCE)
    megabytes = sum(len(d.encode("utf-8")) for d in documents) / 1e6
    our_seconds, our_pairs = ours(documents)
    figures = {
        "prepare_input_mb": round(prepared["input_mb"], 2),
        "prepare_seconds": round(prepared["seconds"], 2),
        "prepare_mb_per_s": round(prepared["input_mb"] / prepared["seconds"], 3),
        "prepare_peak_rss_mb": round(prepared["peak_rss_mb"], 1),
        "prepare_rss_after_imports_mb": round(prepared["rss_after_imports_mb"], 1),
        "near_dedup_mb": round(megabytes, 2),
        "near_dedup_seconds_per_mb": round(our_seconds / megabytes, 4),
        "near_duplicates_found": len(our_pairs),
        "near_duplicates_truly_similar_share": round(share_truly_similar(documents, our_pairs), 3),
    }
    peers, ratios = {}, {}
    try:
        peer_seconds, peer_pairs = datasketch_peer(documents)
        peers = {"datasketch_near_dedup_seconds_per_mb": round(peer_seconds / megabytes, 4),
                 "datasketch_near_duplicates_found": len(peer_pairs),
                 "datasketch_near_duplicates_truly_similar_share": round(share_truly_similar(documents, peer_pairs), 3)}
        ratios = {"near_dedup_speedup_vs_datasketch": round(peer_seconds / our_seconds, 2)}
    except ImportError:
        skip("datasketch", "not installed (pip install datasketch); no peer figures")
    write_result("data", figures, peers, ratios,
                 notes="2-core machine shared with other jobs: timings are noisy. " + json.dumps(prepared["tokens"]))


if __name__ == "__main__":
    main()
