"""Generation speed: our cached engine vs transformers `generate` on the same GPT-2 model, same settings.

For the gpt-tiny and gpt-small presets, our model is exported with `lm2llm.models.hf_compat.to_hf` into
a `GPT2LMHeadModel` holding the same weights (the greedy outputs are checked equal before timing); ours
then stores its weights input-major, as `TextGenerator.from_run` does (`inference/layout.py`), and its
single-token forward is timed both ways. Both
sample with temperature 0.7, top-k 50, top-p 0.9 and generate exactly the same number of tokens.

- prefill tokens/s: one forward pass over B prompts of P tokens that fills the KV cache;
- decode tokens/s: B·(N−1) / (time to generate N tokens − time to generate 1 token), i.e. the steady
  one-token-per-row steps after the prompt;
- the model's own cached single-token forward pass at batch 1, ours vs transformers' (no sampling, no
  loop): where the decode difference comes from;
- per-token latency against context length, with our cache and without it (recomputing the whole
  sequence every step, as nanoGPT's sampler does), on gpt-small up to its full context.

Each figure is the best of a few repeats (the least disturbed by other work on a shared machine), with
one torch thread for both engines.
"""

from __future__ import annotations

import copy
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from harness import best_of, write_result  # noqa: E402

from lm2llm.inference.engine import generate_ids  # noqa: E402
from lm2llm.inference.layout import input_major  # noqa: E402
from lm2llm.inference.sampling import SamplingConfig  # noqa: E402
from lm2llm.inference.speed import latency_curve  # noqa: E402
from lm2llm.models import build_model  # noqa: E402
from lm2llm.models.hf_compat import to_hf  # noqa: E402

PRESETS = {"gpt-tiny": (16, 48), "gpt-small": (32, 96)}  # preset: (prompt tokens, new tokens)
BATCHES = (1, 8)
VOCAB = 4096  # a BPE-sized vocabulary, as the tokenizers stage trains
SAMPLING = dict(temperature=0.7, top_k=50, top_p=0.9)
REPEATS = 10
CONTEXTS = (8, 16, 32, 64, 96, 128)  # gpt-small sees 128 tokens
THREADS = 1  # both engines; a shared 2-core machine makes two-thread timings erratic


def ours_generate(model, prompts: torch.Tensor, new_tokens: int) -> list[list[int]]:
    config = SamplingConfig(max_new_tokens=new_tokens, seed=0, **SAMPLING)
    return [c.token_ids for c in generate_ids(model, prompts.tolist(), config)]


def hf_generate(hf, prompts: torch.Tensor, new_tokens: int, greedy: bool = False) -> torch.Tensor:
    sampling = dict(do_sample=False) if greedy else dict(do_sample=True, **SAMPLING)
    with torch.inference_mode():  # the exported config has no end token, so every row runs to new_tokens
        out = hf.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new_tokens,
                          pad_token_id=0, **sampling)
    assert out.size(1) == prompts.size(1) + new_tokens
    return out


@torch.inference_mode()
def ours_prefill(model, prompts: torch.Tensor, room: int = 1):
    state = model.new_state(prompts.size(0), prompts.size(1) + room)
    model(prompts, state=state)
    return state


@torch.inference_mode()
def hf_prefill(hf, prompts: torch.Tensor):
    return hf(input_ids=prompts, use_cache=True).cache


@torch.inference_mode()
def ours_step(model, token: torch.Tensor, state) -> None:
    model(token, state=state)


@torch.inference_mode()
def hf_step(hf, token: torch.Tensor, cache) -> None:
    hf(input_ids=token, cache=cache, use_cache=True)


def step_ms(prefill, step, steps: int = 40) -> float:
    """Best-of milliseconds of one cached single-token forward pass (batch 1): the model alone, without the
    generation loop, timed over short bursts so that a loaded machine disturbs few of them."""
    best = float("inf")
    for _ in range(2 * REPEATS):
        cache = prefill()
        start = time.perf_counter()
        for _ in range(steps):
            step(cache)
        best = min(best, (time.perf_counter() - start) / steps)
    return 1000 * best


def speeds(prefill, generate, batch: int, prompt_len: int, new_tokens: int) -> dict[str, float]:
    generate(2)  # warm-up: first calls pay for allocations and lazy initialisation
    prefill_s = best_of(prefill, REPEATS)
    one = best_of(lambda: generate(1), REPEATS)
    full = best_of(lambda: generate(new_tokens), REPEATS)
    return {"prefill_tokens_per_s": batch * prompt_len / prefill_s,
            "decode_tokens_per_s": batch * (new_tokens - 1) / (full - one),
            "decode_ms_per_step": 1000 * (full - one) / (new_tokens - 1)}


def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    figures, peers, ratios = {}, {}, {}
    for preset, (prompt_len, new_tokens) in PRESETS.items():
        row_major = build_model("gpt", preset, vocab_size=VOCAB).eval()
        hf = to_hf(row_major)
        model = input_major(copy.deepcopy(row_major))  # as `TextGenerator.from_run` loads a run for generation
        probe = torch.randint(0, VOCAB, (2, prompt_len), generator=torch.Generator().manual_seed(1))
        ours_greedy = [c.token_ids for c in generate_ids(model, probe.tolist(), SamplingConfig(temperature=0, max_new_tokens=8))]
        hf_greedy = hf_generate(hf, probe, 8, greedy=True)[:, prompt_len:].tolist()
        figures[f"{preset}_greedy_equals_hf"] = ours_greedy == hf_greedy
        figures[f"{preset}_params"] = model.num_params()
        token, start = torch.tensor([[1]]), probe[:1]
        ours_ms = step_ms(partial(ours_prefill, model, start, 64), partial(ours_step, model, token))
        hf_ms = step_ms(partial(hf_prefill, hf, start), partial(hf_step, hf, token))
        figures[f"{preset}_b1_forward_ms_per_token"] = ours_ms
        row_major_ms = step_ms(partial(ours_prefill, row_major, start, 64), partial(ours_step, row_major, token))
        figures[f"{preset}_b1_forward_ms_per_token_row_major_weights"] = row_major_ms
        ratios[f"{preset}_b1_forward_row_major_ms_over_input_major"] = row_major_ms / ours_ms
        peers[f"hf_{preset}_b1_forward_ms_per_token"] = hf_ms
        ratios[f"{preset}_b1_forward_hf_ms_over_ours"] = hf_ms / ours_ms
        for batch in BATCHES:
            prompts = torch.randint(0, VOCAB, (batch, prompt_len), generator=torch.Generator().manual_seed(batch))
            key = f"{preset}_b{batch}"
            ours = speeds(partial(ours_prefill, model, prompts), partial(ours_generate, model, prompts),
                          batch, prompt_len, new_tokens)
            theirs = speeds(partial(hf_prefill, hf, prompts), partial(hf_generate, hf, prompts),
                            batch, prompt_len, new_tokens)
            figures.update({f"{key}_{k}": v for k, v in ours.items()})
            peers.update({f"hf_{key}_{k}": v for k, v in theirs.items()})
            for k in ("prefill_tokens_per_s", "decode_tokens_per_s"):
                ratios[f"{key}_{k}_ours_over_hf"] = ours[k] / theirs[k]
    curve = latency_curve(input_major(build_model("gpt", "gpt-small", vocab_size=VOCAB).eval()), CONTEXTS,
                          repeats=2 * REPEATS)
    figures["gpt-small_token_latency_by_context"] = curve
    ratios["cached_latency_longest_over_shortest_context"] = curve[-1]["cached_ms"] / curve[0]["cached_ms"]
    ratios["uncached_latency_longest_over_shortest_context"] = curve[-1]["uncached_ms"] / curve[0]["uncached_ms"]
    ratios["cache_speedup_at_longest_context"] = curve[-1]["speedup"]
    write_result(
        "generate", figures, peers, ratios,
        notes=f"vocab {VOCAB}; weights copied into transformers' GPT2LMHeadModel (to_hf); sampling {SAMPLING}; "
              f"equal prompt lengths (no padding) so both engines do the same work; best of {REPEATS}; "
              f"{THREADS} torch thread; "
              "timed on a shared 2-core machine, so figures are noisy",
    )


if __name__ == "__main__":
    main()
