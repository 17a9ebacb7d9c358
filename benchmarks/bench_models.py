"""Model speed: our fast paths against the written-out ones and against the reference libraries.

- attention: `F.scaled_dot_product_attention` vs the written-out softmax(QKᵀ/√d)V (causal, B=4, H=8, T=256);
- LSTM: PyTorch's fused kernel on our weights vs our unrolled cells vs `torch.nn.LSTM` (forward+backward);
- GPT-2 (small width) forward tokens/s: ours vs transformers' `GPT2LMHeadModel` with the same weights;
- decoding 64 tokens: with the KV cache vs recomputing the whole prefix at every step.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from harness import best_of, write_result  # noqa: E402

from lm2llm.models import build_model  # noqa: E402
from lm2llm.models.attention import sdpa_fast, sdpa_reference  # noqa: E402


def attention_speed() -> dict[str, float]:
    q, k, v = (torch.randn(4, 8, 256, 64) for _ in range(3))
    fast = best_of(lambda: sdpa_fast(q, k, v, causal=True), repeats=10)
    written = best_of(lambda: sdpa_reference(q, k, v, causal=True), repeats=10)
    return {"sdpa_fast_ms": fast * 1e3, "sdpa_written_out_ms": written * 1e3}


def lstm_speed() -> tuple[dict[str, float], dict[str, float]]:
    model = build_model("lstm", vocab_size=256, d_embed=128, d_hidden=256, n_layer=2)
    reference = torch.nn.LSTM(128, 256, num_layers=2, batch_first=True)
    x = torch.randn(16, 128, 128)

    def ours(fused: bool) -> None:
        model.config.use_torch = fused
        out = model._fused(x, model.new_state(16)) if fused else model._unrolled(x, model.new_state(16), None)
        out.sum().backward()

    fused = best_of(lambda: ours(True))
    unrolled = best_of(lambda: ours(False))
    peer = best_of(lambda: reference(x)[0].sum().backward())
    tokens = x.shape[0] * x.shape[1]
    return ({"lstm_fused_tokens_per_s": tokens / fused, "lstm_unrolled_tokens_per_s": tokens / unrolled},
            {"torch_nn_lstm_tokens_per_s": tokens / peer})


@torch.no_grad()
def gpt2_speed() -> tuple[dict[str, float], dict[str, float]]:
    from lm2llm.models.hf_compat import to_hf

    model = build_model("gpt", vocab_size=8192, context_length=256, n_layer=4, d_model=256, n_head=8).eval()
    hf = to_hf(model)
    ids = torch.randint(0, 8192, (8, 256))
    ours = best_of(lambda: model(ids), repeats=5)
    peer = best_of(lambda: hf(ids), repeats=5)
    return {"gpt_forward_tokens_per_s": ids.numel() / ours}, {"hf_gpt2_forward_tokens_per_s": ids.numel() / peer}


@torch.no_grad()
def decoding_speed() -> dict[str, float]:
    model = build_model("llama", vocab_size=4096, context_length=256, n_layer=4, d_model=256, n_head=8,
                        n_kv_head=2).eval()
    prompt = torch.randint(0, 4096, (1, 64))
    new_tokens = 64

    def cached() -> None:
        state = model.new_state(1, 64 + new_tokens)
        logits, _ = model(prompt, state=state)
        for _ in range(new_tokens):
            logits, _ = model(logits[:, -1:].argmax(-1), state=state)

    def recomputed() -> None:
        ids = prompt
        for _ in range(new_tokens):
            logits, _ = model(ids)
            ids = torch.cat([ids, logits[:, -1:].argmax(-1)], dim=1)

    return {"decode_cached_tokens_per_s": new_tokens / best_of(cached, repeats=2),
            "decode_recompute_tokens_per_s": new_tokens / best_of(recomputed, repeats=2)}


def main() -> None:
    attention = attention_speed()
    lstm, lstm_peer = lstm_speed()
    gpt, gpt_peer = gpt2_speed()
    decoding = decoding_speed()
    write_result(
        "models",
        figures={**attention, **lstm, **gpt, **decoding},
        peers={**lstm_peer, **gpt_peer},
        ratios={
            "sdpa_fast_speedup_over_written_out": attention["sdpa_written_out_ms"] / attention["sdpa_fast_ms"],
            "lstm_fused_over_unrolled": lstm["lstm_fused_tokens_per_s"] / lstm["lstm_unrolled_tokens_per_s"],
            "lstm_fused_over_torch_nn_lstm": lstm["lstm_fused_tokens_per_s"] / lstm_peer["torch_nn_lstm_tokens_per_s"],
            "gpt_forward_over_hf_gpt2": gpt["gpt_forward_tokens_per_s"] / gpt_peer["hf_gpt2_forward_tokens_per_s"],
            "kv_cache_decode_speedup": decoding["decode_cached_tokens_per_s"] / decoding["decode_recompute_tokens_per_s"],
        },
        notes=f"torch threads: {torch.get_num_threads()}; on a shared machine other processes add noise, so "
              "ratios are steadier than absolute figures",
    )


if __name__ == "__main__":
    main()
