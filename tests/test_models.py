"""Neural models: attention paths equal, RNN cells equal torch's, decoders equal transformers', cached
decoding equal to recomputation (also with left padding), and save/load round trips."""

from __future__ import annotations

import json

import pytest
import torch

from lm2llm.errors import UserError
from lm2llm.models import build_model, load_model, save_model
from lm2llm.models.attention import causal_padding_mask, repeat_kv, sdpa_fast, sdpa_reference
from lm2llm.models.padding import at_last_real_token, last_real_index, pad

VOCAB = 61
TOL = 1e-5

DECODERS = {
    "gpt2": ("gpt", dict(n_layer=2, d_model=32, n_head=4)),
    "llama-gqa": ("llama", dict(n_layer=2, d_model=32, n_head=4, n_kv_head=2)),
    "palm-mqa-parallel": ("llama", dict(n_layer=2, d_model=32, n_head=4, n_kv_head=1, norm="layernorm",
                                        parallel_block=True, tie_embeddings=True)),
    "sinusoidal": ("gpt", dict(n_layer=2, d_model=32, n_head=4, positional="sinusoidal")),
    "no-positions": ("gpt", dict(n_layer=1, d_model=32, n_head=2, positional="none")),
}


def decoder(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    family, kw = DECODERS[name]
    return build_model(family, vocab_size=VOCAB, context_length=48, **kw).eval()


def recurrent(cell: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(cell, vocab_size=VOCAB, d_embed=12, d_hidden=16, n_layer=2, **kw).eval()


# --- attention -------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_kv_head", [4, 2, 1])
def test_written_out_attention_equals_fused_kernel(n_kv_head):
    torch.manual_seed(0)
    q = torch.randn(2, 4, 7, 8)
    k, v = torch.randn(2, n_kv_head, 7, 8), torch.randn(2, n_kv_head, 7, 8)
    shared = sdpa_fast(q, k, v, causal=True)  # GQA: the kernel shares k, v heads without copying them
    k, v = repeat_kv(k, 4 // n_kv_head), repeat_kv(v, 4 // n_kv_head)
    assert torch.allclose(shared, sdpa_fast(q, k, v, causal=True), atol=1e-6)
    valid = torch.tensor([[True] * 7, [False, False] + [True] * 5])
    for allowed in (None, causal_padding_mask(7, 7, 0), causal_padding_mask(7, 7, 0, valid)):
        ours, weights = sdpa_reference(q, k, v, allowed)
        assert torch.allclose(ours, sdpa_fast(q, k, v, allowed), atol=1e-6)
        assert torch.allclose(weights.sum(-1), torch.ones(()))
    ours, weights = sdpa_reference(q, k, v, causal=True)
    assert torch.allclose(ours, sdpa_fast(q, k, v, causal=True), atol=1e-6)
    assert weights[0, 0, 0, 1:].abs().max() == 0  # the first token sees only itself


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_bf16_cpu_training_takes_the_written_out_path_with_the_same_gradients(name):
    """The dispatch that avoids the slow fused bf16 backward on CPU changes speed, not the maths. With RoPE
    the rotation keeps queries and keys in autocast's bf16 (fp32 tables would promote them to fp32 and
    send them down the fused kernel's slow fp32 backward)."""
    from lm2llm.models.attention import fused_backward_is_slow

    assert fused_backward_is_slow(torch.ones(1, dtype=torch.bfloat16, requires_grad=True))
    assert not fused_backward_is_slow(torch.ones(1, requires_grad=True))
    assert not fused_backward_is_slow(torch.ones(1, dtype=torch.bfloat16))
    grads = []
    for use_fast in (True, False):
        model = decoder(name)
        model.set_fast_attention(use_fast)
        ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(1))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, loss = model(ids, targets=ids)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.equal(grads[0], grads[1])  # both took the written-out path under bf16 autocast


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rope_tables_looked_up_equal_the_ones_computed_for_each_position(dtype):
    """`Transformer.rotary` reads a table of every position below the context length (SmolLM2's: head_dim 64,
    theta 1e5, 8192 positions): each row bit for bit what `Rotary.of(rope_cos_sin(...))` computes for that position
    alone, and for a batch of positions; a chunk reaching past the context is computed directly."""
    from lm2llm.models.attention import Rotary
    from lm2llm.models.positions import rope_cos_sin
    from lm2llm.models.transformer import Chunk

    model = build_model("llama", "llama-tiny", vocab_size=61, context_length=8192, n_head=2, d_model=128,
                        rope_theta=100000.0)
    head_dim = model.config.head_dim
    positions = torch.arange(8192)
    alone = [Rotary.of(*rope_cos_sin(p.view(1, 1), head_dim, 100000.0), dtype) for p in positions.split(1)]
    looked_up = model.rotary(Chunk(positions.view(1, -1)), 8192, dtype)
    assert torch.equal(looked_up.cos[0], torch.cat([r.cos[0] for r in alone]))
    assert torch.equal(looked_up.signed_sin[0], torch.cat([r.signed_sin[0] for r in alone]))
    batch = torch.randint(0, 8192, (3, 5))
    direct = Rotary.of(*rope_cos_sin(batch, head_dim, 100000.0), dtype)
    table = model.rotary(Chunk(batch, offset=8000), 5, dtype)
    assert torch.equal(table.cos, direct.cos) and torch.equal(table.signed_sin, direct.signed_sin)
    past = model.rotary(Chunk(torch.tensor([[8192]]), offset=8192), 1, dtype)  # past the table: computed
    assert torch.equal(past.cos, Rotary.of(*rope_cos_sin(torch.tensor([[8192]]), head_dim, 100000.0), dtype).cos)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decoding_step_forms_equal_the_written_out_formulas_bit_for_bit(dtype):
    """RoPE with the sign folded into the sine table, and RMSNorm in one `F.rms_norm` call: the cheaper forms
    a decoding step uses give exactly the values of the textbook formulas."""
    from lm2llm.models.attention import Rotary, apply_rope
    from lm2llm.models.positions import rope_cos_sin
    from lm2llm.models.transformer import RMSNorm

    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 8).mul(3).to(dtype)  # (B, T, heads, head_dim)
    cos, sin = rope_cos_sin(torch.randint(0, 500, (2, 5)), 8, 10000.0)
    textbook = apply_rope(x.transpose(1, 2), cos, sin).transpose(1, 2)
    assert torch.equal(Rotary.of(cos, sin, dtype).apply(x), textbook)
    norm = RMSNorm(8, 1e-5).to(dtype)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(8))
        x32 = x.float()
        written = (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + 1e-5)).to(dtype) * norm.weight
        assert torch.equal(norm(x), written)


def test_padding_keys_get_no_attention_and_padding_queries_stay_finite():
    valid = torch.tensor([[False, False, True, True]])
    _, weights = sdpa_reference(torch.randn(1, 1, 4, 8), torch.randn(1, 1, 4, 8), torch.randn(1, 1, 4, 8),
                                causal_padding_mask(4, 4, 0, valid))
    assert torch.isfinite(weights).all()
    assert weights[0, 0, 2:, :2].abs().max() == 0


def test_model_fast_and_written_out_attention_agree():
    model = decoder("llama-gqa")
    ids = torch.randint(0, VOCAB, (2, 10))
    fast = model(ids)[0]
    model.set_fast_attention(False)
    assert torch.allclose(fast, model(ids)[0], atol=TOL)
    maps = model.attention_maps(ids)
    assert len(maps) == 2 and maps[0].shape == (2, 4, 10, 10)
    assert torch.allclose(maps[0].sum(-1), torch.ones(())) and maps[0].triu(1).abs().max() == 0


# --- recurrent models ------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_cells_equal_torch_nn_on_the_same_weights(cell):
    model = recurrent(cell)
    reference_cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    reference = reference_cls(12, 16, num_layers=2, batch_first=True)
    with torch.no_grad():
        for layer, c in enumerate(model.cells):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(reference, f"{name}_l{layer}").copy_(getattr(c, name))
    ids = torch.randint(0, VOCAB, (3, 9))
    x = model.tok_emb(ids)
    expected = reference(x)[0]
    ours = model._unrolled(x, model.new_state(3), None)
    assert torch.allclose(ours, expected, atol=TOL)
    logits = model(ids)[0]
    model.config.use_torch = True
    assert torch.allclose(model(ids)[0], logits, atol=TOL)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("use_torch", [False, True])
def test_rnn_state_carry_equals_full_sequence(cell, use_torch):
    model = recurrent(cell, use_torch=use_torch)
    ids = torch.randint(0, VOCAB, (2, 11))
    full = model(ids)[0]
    state = model.new_state(2, 11)
    pieces = [model(ids[:, :4], state=state)[0]] + [model(ids[:, t:t + 1], state=state)[0] for t in range(4, 11)]
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=TOL)


def test_rnn_left_padding_leaves_state_untouched():
    model = recurrent("lstm")
    ids = torch.randint(1, VOCAB, (1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 1, 1]])
    assert torch.allclose(model(padded, attention_mask=mask)[0][:, 3:], model(ids)[0], atol=TOL)


def test_last_real_token_of_left_and_right_padded_rows():
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 0, 0, 0]])
    assert last_real_index(mask).tolist() == [2, 4, 4, 1]
    hidden = torch.arange(4 * 5 * 3, dtype=torch.float32).reshape(4, 5, 3)
    picked = at_last_real_token(hidden, mask)
    assert picked.shape == (4, 3)
    assert torch.equal(picked, torch.stack([hidden[0, 2], hidden[1, 4], hidden[2, 4], hidden[3, 1]]))


def test_pad_right_left_and_to_a_length():
    ids, mask = pad([[4, 5, 6], [7], []], 0)
    assert ids.tolist() == [[4, 5, 6], [7, 0, 0], [0, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    ids, mask = pad([[4, 5, 6], [7]], 9, side="left", length=4)
    assert ids.tolist() == [[9, 4, 5, 6], [9, 9, 9, 7]] and mask.tolist() == [[0, 1, 1, 1], [0, 0, 0, 1]]
    assert last_real_index(mask).tolist() == [3, 3]
    with pytest.raises(ValueError, match="side"):
        pad([[1]], 0, side="middle")


# --- decoders --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_decoder_logits_equal_transformers(name):
    pytest.importorskip("transformers")
    from lm2llm.models.hf_compat import to_hf

    model = decoder(name)
    ids = torch.randint(0, VOCAB, (2, 13))
    with torch.no_grad():
        assert torch.allclose(model(ids)[0], to_hf(model)(ids).logits, atol=TOL)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_one_weight_name_table_serves_both_directions(name):
    from lm2llm.models.hf_compat import decoder_weight_names, rename_from_hf, rename_to_hf

    model = decoder(name)
    names = decoder_weight_names(model.config)
    ours = [n for entry in names for n in entry.ours]
    assert sorted(ours) == sorted(k for k in model.state_dict() if k != "lm_head.weight")
    sd = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    back = rename_from_hf(rename_to_hf(sd, names), names)
    assert back.keys() == sd.keys() and all(torch.equal(back[k], sd[k]) for k in sd)


@pytest.mark.parametrize("name", list(DECODERS))
def test_cached_decoding_equals_recomputation(name):
    model = decoder(name)
    ids = torch.randint(0, VOCAB, (2, 12))
    with torch.no_grad():
        full = model(ids)[0]
        state = model.new_state(2, 16)
        steps = [model(ids[:, :5], state=state)[0]] + [model(ids[:, t:t + 1], state=state)[0] for t in range(5, 12)]
    assert (torch.cat(steps, dim=1) - full).abs().max() <= TOL
    assert state.length == 12


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "sinusoidal"])
def test_left_padded_batch_matches_unpadded_rows(name):
    """The inference engine batches prompts of different lengths by padding on the left."""
    model = decoder(name)
    long_row, short_row = torch.randint(1, VOCAB, (7,)), torch.randint(1, VOCAB, (4,))
    batch = torch.stack([long_row, torch.cat([torch.zeros(3, dtype=torch.long), short_row])])
    mask = torch.tensor([[1] * 7, [0, 0, 0, 1, 1, 1, 1]])
    continuation = torch.randint(1, VOCAB, (2, 3))
    with torch.no_grad():
        padded_full = model(batch, attention_mask=mask)[0]
        assert (padded_full[1, 3:] - model(short_row[None])[0][0]).abs().max() <= TOL
        assert (padded_full[0] - model(long_row[None])[0][0]).abs().max() <= TOL
        state = model.new_state(2, 10)
        model(batch, state=state, attention_mask=mask)
        steps = [model(continuation[:, t:t + 1], state=state)[0] for t in range(3)]
        alone = model(torch.cat([short_row, continuation[1]])[None])[0][0, 4:]
    assert (torch.cat(steps, dim=1)[1] - alone).abs().max() <= TOL


def test_cache_overflow_and_context_overflow_are_user_errors():
    model = decoder("gpt2")
    state = model.new_state(1, 4)
    with pytest.raises(UserError, match="KV cache"):
        model(torch.zeros(1, 5, dtype=torch.long), state=state)
    with pytest.raises(UserError, match="context length"):
        model(torch.zeros(1, 49, dtype=torch.long))


def test_gpt2_init_scales_residual_projections():
    torch.manual_seed(0)
    model = build_model("gpt", n_layer=8, d_model=256, n_head=4)
    assert abs(model.blocks[0].attn.out_proj.weight.std().item() - 0.02 / 4) < 1e-3
    assert abs(model.blocks[0].attn.q_proj.weight.std().item() - 0.02) < 2e-3
    assert model.lm_head.weight is model.tok_emb.weight


def test_attention_dropout_drops_weights_then_output_as_nanogpt_does():
    """Training with dropout: the attention weights, then the projected output (GPT-2, nanoGPT); none in eval."""
    import math

    torch.manual_seed(0)
    model = build_model("gpt", vocab_size=VOCAB, n_layer=1, d_model=32, n_head=4, dropout=0.3)
    attn, x = model.blocks[0].attn, torch.randn(2, 6, 32)
    attn.use_fast = False  # the written-out path draws its masks from the global generator, in this order
    q, k, v = (t.transpose(1, 2) for t in attn.project(x, None))
    scores = (q @ k.transpose(-2, -1) / math.sqrt(attn.head_dim)).masked_fill(
        ~causal_padding_mask(6, 6, 0), torch.finfo(torch.float32).min)
    torch.manual_seed(5)
    heads = torch.nn.functional.dropout(scores.softmax(-1), 0.3) @ v
    expected = torch.nn.functional.dropout(attn.out_proj(heads.transpose(1, 2).reshape(2, 6, 32)), 0.3)
    torch.manual_seed(5)
    assert torch.allclose(attn(x, None, causal=True), expected, atol=1e-6)
    attn.use_fast = True
    torch.manual_seed(5)
    assert not torch.allclose(attn(x, None, causal=True), attn(x, None, causal=True))  # the fused kernel drops too
    attn.eval()
    assert torch.equal(attn(x, None, causal=True), attn(x, None, causal=True))


def test_zero_init_residual_blocks_start_as_the_identity():
    torch.manual_seed(0)
    model = build_model("llama", vocab_size=VOCAB, n_layer=2, d_model=32, n_head=4, zero_init_residual=True)
    ids = torch.randint(0, VOCAB, (2, 7))
    logits, _ = model(ids)
    assert all(b.attn.out_proj.weight.abs().max() == 0 and b.mlp.down.weight.abs().max() == 0 for b in model.blocks)
    assert torch.equal(logits, model.lm_head(model.norm_f(model.tok_emb(ids))))  # a bigram model at step 0


def test_relu_squared_mlp_is_the_formula_and_has_no_transformers_counterpart():
    from lm2llm.models.hf_compat import hf_kind

    torch.manual_seed(0)
    model = build_model("gpt", vocab_size=VOCAB, n_layer=1, d_model=32, n_head=4, mlp="relu2")
    mlp, x = model.blocks[0].mlp, torch.randn(2, 5, 32)
    assert torch.equal(mlp(x), mlp.down(torch.relu(mlp.up(x)) ** 2))
    with pytest.raises(UserError, match="no exact transformers counterpart"):
        hf_kind(model.config)


def test_loss_ignores_minus_100_and_matches_cross_entropy():
    model = decoder("gpt2")
    ids = torch.randint(0, VOCAB, (2, 6))
    targets = ids.clone()
    targets[:, :2] = -100
    logits, loss = model(ids, targets)
    expected = torch.nn.functional.cross_entropy(logits[:, 2:].reshape(-1, VOCAB), ids[:, 2:].reshape(-1))
    assert torch.allclose(loss, expected)


# --- build / save / load ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gpt2", "palm-mqa-parallel"])
def test_save_load_round_trip(tmp_path, name):
    model = decoder(name)
    save_model(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model_config.json").read_text())
    assert set(meta) == {"family", "config"}
    loaded = load_model(tmp_path / "m").eval()
    ids = torch.randint(0, VOCAB, (1, 8))
    assert torch.equal(model(ids)[0], loaded(ids)[0])
    assert loaded.config == model.config
    assert not list(tmp_path.glob("m/.*.tmp"))


def test_a_model_around_a_backbone_saves_and_loads_through_the_shared_helpers(tmp_path):
    from lm2llm.models.io import load_weights, save_with_backbone, saved_backbone

    backbone = decoder("gpt2")
    backbone.lm_head = torch.nn.Identity()  # as a classifier does: nothing shared, so save_file stores it as is
    wrapper = torch.nn.ModuleDict({"backbone": backbone, "head": torch.nn.Linear(32, 3)})
    save_with_backbone(wrapper, backbone, tmp_path, "w.safetensors", "w.json", labels=["긍정", "부정", "중립"])
    rebuilt, meta = saved_backbone(tmp_path, "w.json", "w.safetensors", hint="", extra=("labels",))
    rebuilt.lm_head = torch.nn.Identity()
    assert meta["labels"] == ["긍정", "부정", "중립"] and rebuilt.config == backbone.config
    loaded = load_weights(torch.nn.ModuleDict({"backbone": rebuilt, "head": torch.nn.Linear(32, 3)}),
                          tmp_path / "w.safetensors")
    assert all(torch.equal(v, wrapper.state_dict()[k]) for k, v in loaded.state_dict().items())
    with pytest.raises(UserError, match='"score": ...'):
        saved_backbone(tmp_path, "w.json", "w.safetensors", hint="", extra=("score",))
    with pytest.raises(UserError, match="do not match"):
        load_weights(torch.nn.ModuleDict({"backbone": rebuilt}), tmp_path / "w.safetensors")


def test_save_load_rnn(tmp_path):
    model = recurrent("gru")
    save_model(model, tmp_path)
    ids = torch.randint(0, VOCAB, (1, 5))
    assert torch.equal(load_model(tmp_path).eval()(ids)[0], model(ids)[0])


def test_load_errors_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(tmp_path)
    (tmp_path / "model_config.json").write_text(json.dumps({"family": "lstm", "config": {"d_hidden": 8}}))
    with pytest.raises(UserError, match="model.safetensors"):
        load_model(tmp_path)
    save_model(recurrent("lstm"), tmp_path / "other")
    (tmp_path / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(UserError, match="do not match"):
        load_model(tmp_path)


@pytest.mark.parametrize(("family", "kw", "match"), [
    ("transformer", {}, "unknown model family"),
    ("gpt", {"n_heads": 4}, "unknown gpt config field"),
    ("gpt", {"norm": "batchnorm"}, "unknown norm"),
    ("llama", {"n_head": 4, "n_kv_head": 3}, "multiple of n_kv_head"),
])
def test_bad_configs_are_user_errors(family, kw, match):
    with pytest.raises(UserError, match=match):
        build_model(family, **kw)


def test_preset_of_another_family_is_refused():
    with pytest.raises(UserError, match="belongs to family"):
        build_model("gpt", "llama-tiny")
    with pytest.raises(UserError, match="unknown preset"):
        build_model("gpt", "gpt-5")


def test_sinusoidal_positions_are_added_at_the_token_embeddings_size():
    """Unscaled sinusoids (amplitude 1) drowned 0.02-std embeddings 35 to 1; the paper's balance is kept."""
    model = build_model("gpt", n_layer=1, d_model=64, n_head=4, positional="sinusoidal")
    token_rms = model.tok_emb.weight.pow(2).mean().sqrt().item()
    position_rms = model.pos_emb.table_values.pow(2).mean().sqrt().item()
    assert 0.5 < position_rms / token_rms < 1.0
