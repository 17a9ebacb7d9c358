"""Scoring speed and fidelity: our harness vs lm-eval's own `hf` backend (transformers) on the same model.

A small GPT run (a byte-level BPE trained on python-docs, `gpt-tiny`-sized, random weights: scoring speed
depends on the shape, not on what was learned) is exported to a transformers `GPT2LMHeadModel`
(`lm2llm export-hf`). The same python-cloze requests (context, " " + ending) go through
`lm2llm.evaluate.harness.LM2LLM.loglikelihood` and through lm-eval's `HFLM.loglikelihood`, both at batch
size 8 with one torch thread; reported: requests per second each, their ratio, and the largest difference
between the two log-likelihoods (a fidelity check against transformers). Ends with one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from harness import best_of, write_result  # noqa: E402

REQUESTS_DOCS, BATCH, THREADS, REPEATS = 50, 8, 1, 3


def main() -> None:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from lm2llm.data import load_documents
    from lm2llm.evaluate import find_task
    from lm2llm.evaluate.harness import LM2LLM
    from lm2llm.hf.export import export_run
    from lm2llm.serve.demo import save_demo_run

    torch.set_num_threads(THREADS)
    root = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    run = save_demo_run(root / "run", load_documents("python-docs", limit=300), vocab_size=2000, family="gpt",
                        context_length=256, n_layer=4, d_model=128, n_head=4)
    export_run(run, root / "hf")
    docs = find_task("python-cloze").docs()[:REQUESTS_DOCS]
    pairs = [(d["context"], " " + c) for d in docs for c in d["choices"]]
    instances = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    ours_lm = LM2LLM(run=str(run), batch_size=BATCH)
    hf_lm = HFLM(pretrained=str(root / "hf"), batch_size=BATCH, device="cpu", dtype="float32")
    ours = ours_lm.loglikelihood(instances)
    theirs = hf_lm.loglikelihood(instances, disable_tqdm=True)
    max_diff = max(abs(a[0] - b[0]) for a, b in zip(ours, theirs, strict=True))
    greedy_agree = sum(a[1] == b[1] for a, b in zip(ours, theirs, strict=True)) / len(pairs)
    ours_s = best_of(lambda: ours_lm.loglikelihood(instances), REPEATS)
    hf_s = best_of(lambda: hf_lm.loglikelihood(instances, disable_tqdm=True), REPEATS)
    figures = {"requests": len(pairs), "ours_requests_per_s": len(pairs) / ours_s, "max_abs_loglikelihood_diff": max_diff,
               "greedy_flags_equal_share": greedy_agree}
    peers = {"lm_eval_hf_requests_per_s": len(pairs) / hf_s}
    ratios = {"ours_over_lm_eval_hf_speed": hf_s / ours_s}
    write_result("eval", figures, peers, ratios,
                 notes=f"GPT 4x128, vocab 2000, context 256, random weights; python-cloze first {REQUESTS_DOCS} "
                       f"items x 4 endings; batch {BATCH}; {THREADS} torch thread; best of {REPEATS}; "
                       "timed on a shared 2-core machine, so figures are noisy")
    print(json.dumps({"name": "eval", **figures, **peers, **ratios}))


if __name__ == "__main__":
    main()
