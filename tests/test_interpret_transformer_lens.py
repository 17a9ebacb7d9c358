"""Hooked activations against TransformerLens itself, on GPT-2-style weights we export.

TransformerLens is not a dependency (its 3.x line, the last with `HookedTransformer`, pulls in wandb and
more); the test runs where it is importable, e.g. after
`pip install --no-deps "transformer_lens<4" einops fancy_einsum jaxtyping beartype typeguard better_abc wadler_lindig`.
"""

from __future__ import annotations

import pytest
import torch

from lm2llm.interpret import run_with_cache
from lm2llm.interpret.logit_lens import lens_logits
from lm2llm.models import build_model
from lm2llm.models.hf_compat import to_hf

transformer_lens = pytest.importorskip("transformer_lens")


def test_residual_stream_attention_and_cached_scale_lens_equal_transformer_lens():
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    torch.manual_seed(0)
    model = build_model("gpt", vocab_size=101, context_length=32, n_layer=3, d_model=32, n_head=4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(5.0) if p.dim() > 1 else p.add_(0.1 * torch.randn_like(p))
    c = model.config
    cfg = HookedTransformerConfig(n_layers=c.n_layer, d_model=c.d_model, d_head=c.head_dim, n_heads=c.n_head,
                                  d_mlp=c.d_ff, d_vocab=c.vocab_size, n_ctx=c.context_length, act_fn="gelu_new",
                                  normalization_type="LN", eps=c.norm_eps, default_prepend_bos=False)
    hooked = HookedTransformer(cfg)
    hooked.load_and_process_state_dict(convert_gpt2_weights(to_hf(model), cfg), fold_ln=False,
                                       center_writing_weights=False, center_unembed=False,
                                       fold_value_biases=False, refactor_factored_attn_matrices=False)
    ids = torch.randint(0, 101, (2, 12), generator=torch.Generator().manual_seed(1))
    trace = run_with_cache(model, ids, attention=True)
    logits, cache = hooked.run_with_cache(ids)
    for layer in range(c.n_layer):
        assert (trace.resid[layer] - cache["resid_pre", layer]).abs().max() < 1e-5
        assert (trace.attention[layer] - cache["pattern", layer]).abs().max() < 1e-5
    assert (trace.resid[-1] - cache["resid_post", c.n_layer - 1]).abs().max() < 1e-5
    assert (trace.logits - logits).abs().max() < 1e-4
    # the two lenses: apply_ln_to_stack with the final norm's cached scale, and with recomputed statistics
    stack, labels = cache.accumulated_resid(return_labels=True)
    assert len(labels) == c.n_layer + 1
    cached = cache.apply_ln_to_stack(stack, recompute_ln=False) * hooked.ln_final.w + hooked.ln_final.b
    renormed = cache.apply_ln_to_stack(stack, recompute_ln=True)
    for ours, theirs in ((lens_logits(model, trace, "cached_scale"), cached), (lens_logits(model, trace, "renorm"), renormed)):
        assert (ours - (theirs @ hooked.W_U + hooked.b_U)).abs().max() < 1e-4
