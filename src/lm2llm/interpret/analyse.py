"""One prompt, one question about the model: the package side of `lm2llm interpret`.

`analyse` returns JSON-ready numbers and matplotlib figures; the CLI only writes them.
"""

from __future__ import annotations

from typing import Any

import torch

from lm2llm.errors import UserError
from lm2llm.interpret.attention import head_entropy, plot_heads, token_label, token_labels
from lm2llm.interpret.hooks import decoder, run_with_cache
from lm2llm.interpret.induction import induction_scores, plot_head_scores
from lm2llm.interpret.logit_lens import METHODS, lens_report, plot_lens
from lm2llm.interpret.patching import patch_residual_stream, plot_patching

WHAT = ("attention", "lens", "patch", "heads")


def single_token(tokenizer: Any, text: str, where: str) -> int:
    ids = tokenizer.encode(text)
    if len(ids) != 1:
        raise UserError(f"{text!r} is {len(ids)} tokens, not one", where=where,
                        hint="give a single-token answer, usually with its leading space, e.g. ' Paris'")
    return ids[0]


def prompt_ids(tokenizer: Any, prompt: str, where: str = "--prompt") -> list[int]:
    ids = tokenizer.encode(prompt)
    if not ids:
        raise UserError("the prompt is empty", where=where)
    return ids


def analyse(model: torch.nn.Module, tokenizer: Any, prompt: str, what: str, *, corrupted: str | None = None,
            answer: str | None = None, wrong: str | None = None, layers: list[int] | None = None,
            induction_length: int = 20) -> tuple[dict, dict[str, Any]]:
    """(numbers, figures by file stem) for one of WHAT."""
    model = decoder(model).eval()
    if what not in WHAT:
        raise UserError(f"unknown analysis {what!r}", where="--what", hint=f"choose from {', '.join(WHAT)}")
    if what == "heads":
        specials = len(getattr(tokenizer, "special_tokens", []))
        scores = induction_scores(model, length=induction_length, prefix=getattr(tokenizer, "eos_id", None),
                                  low=specials)
        best = int(scores.argmax())
        layer, head = divmod(best, scores.size(1))
        numbers = {"what": what, "induction_scores": scores.tolist(), "best": {"layer": layer, "head": head,
                                                                              "score": float(scores.max())},
                   "sequence_length": 2 * induction_length + 1,
                   "chance_note": "TransformerLens' score: a perfect induction head scores about 0.5 here"}
        return numbers, {"induction_heads": plot_head_scores(scores, "induction score per head")}
    ids = prompt_ids(tokenizer, prompt)
    labels = token_labels(tokenizer, ids)
    if what == "attention":
        trace = run_with_cache(model, torch.tensor([ids]), attention=True)
        n_layer = len(trace.attention)
        chosen = layers if layers is not None else sorted({0, n_layer // 2, n_layer - 1})
        bad = [i for i in chosen if not 0 <= i < n_layer]
        if bad:
            raise UserError(f"layer {bad[0]} does not exist (the model has {n_layer})", where="--layer")
        numbers = {"what": what, "tokens": labels, "layers": chosen,
                   "attention": {i: trace.attention[i][0].tolist() for i in chosen},
                   "entropy": [head_entropy(w[0]).tolist() for w in trace.attention]}
        figures = {f"attention_layer{i:02d}": plot_heads(trace, labels, i, f"attention, layer {i}") for i in chosen}
        return numbers, figures
    if what == "lens":
        trace = run_with_cache(model, torch.tensor([ids]))
        answer_id = single_token(tokenizer, answer, "--answer") if answer else None
        reports = {m: lens_report(model, trace, m, answer_id=answer_id) for m in METHODS}
        numbers = {"what": what, "tokens": labels, "answer": tokenizer.decode([reports["renorm"].answer_id]),
                   **{m: {"answer_rank": r.answer_rank, "answer_prob": r.answer_prob,
                          "first_top_layer": r.first_top_layer(),
                          "top_tokens": [[tokenizer.decode([i]) for i in row] for row in r.top_ids],
                          "top_probs": r.top_probs} for m, r in reports.items()}}
        figures = {f"lens_{m}": plot_lens(model, trace, labels, lambda i: token_label(tokenizer, i), m) for m in METHODS}
        return numbers, figures
    if corrupted is None:
        raise UserError("patching needs a corrupted prompt", where="--corrupted",
                        hint="e.g. --prompt 'The capital of France is' --corrupted 'The capital of Italy is'")
    bad_ids = prompt_ids(tokenizer, corrupted, "--corrupted")
    with torch.no_grad():
        clean_ranked = model(torch.tensor([ids]))[0][0, -1].argsort(descending=True)[:2].tolist()
        corrupted_top = int(model(torch.tensor([bad_ids]))[0][0, -1].argmax())
    good = single_token(tokenizer, answer, "--answer") if answer else clean_ranked[0]
    if wrong:
        worse = single_token(tokenizer, wrong, "--wrong")
    else:  # the corrupted prompt's own answer; if it is the same token, the clean prompt's runner-up
        worse = corrupted_top if corrupted_top != good else clean_ranked[1]
    result = patch_residual_stream(model, ids, bad_ids, good, worse)
    layer, position, effect = result.best()
    numbers = {"what": what, "tokens": labels, "corrupted_tokens": token_labels(tokenizer, bad_ids),
               "answer": tokenizer.decode([good]), "wrong": tokenizer.decode([worse]),
               "clean_logit_diff": result.clean_diff, "corrupted_logit_diff": result.corrupted_diff,
               "effect": result.effect, "best": {"layer": layer, "position": position, "effect": effect}}
    return numbers, {"patching": plot_patching(result, labels)}
