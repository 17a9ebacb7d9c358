"""5-gram modified Kneser-Ney: build + evaluate time and peak memory, against NLTK's KneserNeyInterpolated.

Corpora: ../shared/data/tinyshakespeare.txt (skipped if absent) and python-docs, one sentence per line,
whitespace tokens; 90% of lines train, 10% are held out. NLTK is pure Python and takes minutes on these
sizes, so the head-to-head runs on a capped slice (NLTK_TRAIN_LINES / NLTK_TEST_LINES) for both; our
full-corpus figures are reported beside it. NLTK uses one fixed discount and gives unseen words
probability 0, so its perplexity is reported, not compared: it is a speed peer, not a correctness oracle.
Each measurement runs in a fresh process so its peak memory is its own.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SHARED_DATA, measure_in_subprocess, skip, write_result  # noqa: E402

ORDER = 5
NLTK_TRAIN_LINES = 2000
NLTK_TEST_LINES = 200

LOAD = """
import json, sys
from pathlib import Path
def lines_of(corpus):
    if corpus == "python-docs":
        from lm2llm.data import load_documents
        return [l.strip() for d in load_documents("python-docs") for l in d.splitlines() if l.strip()]
    return [l for l in Path(corpus).read_text(encoding="utf-8").splitlines() if l.strip()]
lines = lines_of(CORPUS)
cut = len(lines) * 9 // 10
train_lines, test_lines = lines[:cut], lines[cut:]
if CAP:
    train_lines, test_lines = train_lines[:NLTK_TRAIN_LINES], test_lines[:NLTK_TEST_LINES]
"""

OURS = LOAD + """
import time, resource
from lm2llm.ngram import NgramConfig, evaluate, train
start = time.perf_counter()
model = train(train_lines, NgramConfig(order=ORDER, discount_fallback=True))
built = time.perf_counter()
result = evaluate(model, test_lines)
done = time.perf_counter()
print(json.dumps({"build_s": built - start, "eval_s": done - built, "perplexity": result.perplexity,
                  "train_tokens": sum(len(l.split()) + 1 for l in train_lines),
                  "ngrams": model.sizes, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

NLTK = LOAD + """
import time, resource
from nltk.lm import KneserNeyInterpolated
from nltk.lm.preprocessing import padded_everygram_pipeline, pad_both_ends
from nltk.util import ngrams
start = time.perf_counter()
grams, vocab = padded_everygram_pipeline(ORDER, [l.split() for l in train_lines])
model = KneserNeyInterpolated(ORDER)
model.fit(grams, vocab)
built = time.perf_counter()
test = [g for l in test_lines for g in ngrams(pad_both_ends(l.split(), n=ORDER), ORDER)]
perplexity = model.perplexity(test)
done = time.perf_counter()
print(json.dumps({"build_s": built - start, "eval_s": done - built,
                  "perplexity": perplexity if perplexity != float("inf") else "inf",
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

COUNT_1M = """
import json, time
from pathlib import Path
from lm2llm.ngram.counts import NgramCounts
from lm2llm.ngram.vocab import Vocabulary, tokenize
sentences = tokenize(Path(CORPUS).read_text(encoding="utf-8").splitlines()) * 5
vocab = Vocabulary.build(sentences)
tokens, starts = vocab.encode(sentences)
start = time.perf_counter()
counts = NgramCounts.from_ids(vocab, tokens, starts, 5)
print(json.dumps({"tokens": int(len(tokens)), "count_s": time.perf_counter() - start}))
"""


def measure(template: str, corpus: str, cap: bool) -> dict:
    prelude = f"CORPUS = {corpus!r}\nCAP = {cap}\nORDER = {ORDER}\nNLTK_TRAIN_LINES = {NLTK_TRAIN_LINES}\n" \
              f"NLTK_TEST_LINES = {NLTK_TEST_LINES}\n"
    return measure_in_subprocess(prelude + template, timeout=3600)


def main() -> None:
    corpora = {"python-docs": "python-docs"}
    shakespeare = SHARED_DATA / "tinyshakespeare.txt"
    if shakespeare.is_file():
        corpora = {"tinyshakespeare": str(shakespeare), **corpora}
    else:
        skip("tinyshakespeare", f"{shakespeare} is absent")
    figures, peers, ratios = {}, {}, {}
    for name, corpus in corpora.items():
        figures[f"{name}_full"] = measure(OURS, corpus, cap=False)
        ours = figures[f"{name}_capped"] = measure(OURS, corpus, cap=True)
        theirs = peers[f"nltk_{name}_capped"] = measure(NLTK, corpus, cap=True)
        ratios[f"{name}_capped_nltk_build_over_ours"] = theirs["build_s"] / ours["build_s"]
        ratios[f"{name}_capped_nltk_eval_over_ours"] = theirs["eval_s"] / ours["eval_s"]
    if shakespeare.is_file():
        figures["count_order5_1m_tokens"] = measure(COUNT_1M, str(shakespeare), cap=False)
    write_result("ngram", figures, peers, ratios, notes=(
        f"order {ORDER}; NLTK and the *_capped figures use the first {NLTK_TRAIN_LINES} training lines and "
        f"{NLTK_TEST_LINES} held-out lines (ours with --discount-fallback, which applies only where lmplz's closed form fails); NLTK's perplexity is inf when a held-out word is unseen (it gives it p=0). "
        "python-docs peak memory includes loading the corpus. count_order5_1m_tokens: tinyshakespeare repeated 5x. Timings on a shared 2-core machine are noisy."))


if __name__ == "__main__":
    main()
