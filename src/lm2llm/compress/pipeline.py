"""`compress_run`: a model (a run or a registered name) compressed by one method, saved as a new run,
and optionally measured against the original (`lm2llm compress`).

The new run holds what the compressed model computes as ordinary float weights (`model.safetensors`:
GGUF blocks and pruned matrices expanded; bf16 stored as bf16), so every command that takes a run takes
it. int8/int4 runs keep the original weights and record `"quantize"` in `config.json`: the packed
integers are rebuilt when the run is loaded for generation (a second of work for SmolLM2), since torch's
packed int4 layout is not a file format. `lm2llm export-gguf RUN --type q8_0` turns a q8_0 run into the
same GGUF file as exporting the original (re-quantizing a Q8_0 round trip gives the same blocks).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import torch

from lm2llm.compress.measure import CORPORA, Reference, decode_speed, held_out_windows, quality
from lm2llm.compress.prune import sparse_bytes
from lm2llm.compress.variants import Method, apply_method, weight_bytes
from lm2llm.compress.weight_only import KINDS
from lm2llm.data import load_documents
from lm2llm.errors import UserError
from lm2llm.gguf.registry import resolve_run
from lm2llm.inference.layout import for_cpu_inference
from lm2llm.models import load_model, save_model
from lm2llm.models.transformer import Transformer
from lm2llm.runs import RunDir, check_out, output_dir
from lm2llm.tokenizer import Tokenizer, load_tokenizer

SPEED_PROMPT = "def read_config(path):"


def calibration_batches(tokenizer: Tokenizer, sequences: int, length: int = 128) -> list[torch.Tensor]:
    """Wanda/SparseGPT calibration: `sequences` windows from the first python-docs documents (the evaluation
    uses documents 200 onwards), in batches of 8."""
    ids: list[int] = []
    for text in load_documents("python-docs", limit=200):
        ids += tokenizer.encode(text + "\n\n")
        if len(ids) >= sequences * length:
            break
    windows = torch.tensor(ids[:len(ids) // length * length]).view(-1, length)[:sequences]
    return list(windows.split(8))


def measure(original: Transformer, variants: Iterable[tuple[str, torch.nn.Module, Method]], tokenizer: Tokenizer,
            windows: int, length: int, speed_tokens: int, timed: Collection[str] | None = None) -> list[dict[str, Any]]:
    """One row per variant: weight bytes (and, when pruned, the bytes with the pruned matrices in CSR), batch-1 decode tokens/s
    (float variants in the CPU layout `generate` uses: stacked projections, bf16 packed; only the variants
    named in `timed`, when given), and per held-out corpus the perplexity, KL(original ‖ variant) mean and
    p99, and top-1 agreement (the original's own row from the reference, not computed again). `variants`
    may be a generator: each model is measured and let go before the next is built."""
    references = {source: Reference.of(original, held_out_windows(tokenizer, source, windows, length))
                  for source in CORPORA}
    prompt = tokenizer.encode(SPEED_PROMPT)
    rows = []
    for name, model, method in variants:
        row: dict[str, Any] = {"method": name, "weight_bytes": weight_bytes(model, method)}
        if method.sparsity is not None:  # the same model with its pruned matrices stored as CSR
            sizes = sparse_bytes(model, bits=32)
            row["csr_bytes_fp32"] = row["weight_bytes"] - sizes["dense"] + sizes["csr"]
        if speed_tokens and (timed is None or name in timed):  # in the layout `generate` gives, on a copy
            row["decode_tokens_per_s"] = decode_speed(for_cpu_inference(copy.deepcopy(model)), prompt, speed_tokens)
        else:
            row["decode_tokens_per_s"] = None
        for source, reference in references.items():
            scores = quality(None if model is original else model, reference)
            row[source] = {"perplexity": scores.perplexity, "kl_mean": scores.kl_mean, "kl_p99": scores.kl_p99,
                           "top1_agreement": scores.top1_agreement}
        rows.append(row)
    return rows


def compress_run(source: str | Path, method_text: str, out: str | Path, *, calibration: int = 64,
                 evaluate: bool = False, windows: int = 4, length: int = 256, speed_tokens: int = 32) -> dict[str, Any]:
    """Compress the model at `source` with `method_text` into the new run `out`; with `evaluate`, measure it
    against the original on held-out python-docs and korean-law text."""
    method = Method.parse(method_text)
    out = Path(out)
    check_out(out, "compress", inputs=[source])  # the one output policy (lm2llm.runs), before any work
    run = resolve_run(source)
    original = load_model(run).eval()
    if not isinstance(original, Transformer):
        raise UserError("compression needs a decoder-only Transformer run", where=str(run))
    tokenizer = load_tokenizer(run)
    model = copy.deepcopy(original)
    start = time.perf_counter()
    report = apply_method(model, method, calibration_batches(tokenizer, calibration) if method.needs_calibration else ())
    summary: dict[str, Any] = {"stage": "compress", "source": str(Path(run).resolve()), "method": method.label,
                               "seconds": time.perf_counter() - start, **report}
    if method.kind in KINDS:
        summary["quantize"] = method.kind  # applied when the run is loaded for generation
    with output_dir(out, "compress", inputs=[source]) as tmp:
        save_model(original if method.kind in KINDS else model, tmp)
        tokenizer.save(tmp)
        if evaluate:
            variants = [("fp32", original, Method("fp32")), (method.label, model, method)]
            summary["evaluation"] = measure(original, variants, tokenizer, windows, length, speed_tokens)
        RunDir(tmp).write_config(summary)
    return {"out": str(out), **summary}
