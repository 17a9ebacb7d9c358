"""LoRA from scratch against PEFT: same base, same A/B → same outputs, merged weights and adapter files."""

import copy
import json
import math
import os

import pytest
import torch

from lm2llm.errors import UserError
from lm2llm.models import build_model, load_model, save_model
from lm2llm.models.lora import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    LoraConfig,
    LoraLinear,
    add_lora,
    load_adapter,
    lora_layers,
    merge_and_unload,
    merge_lora,
    save_adapter,
    select_targets,
    trainable_share,
    unmerge_lora,
)

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

TOL = 1e-6


def tiny_llama():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    return transformers.LlamaForCausalLM(config).eval()


def tiny_gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=64, n_embd=32, n_layer=2, n_head=4, n_positions=32)
    return transformers.GPT2LMHeadModel(config).eval()


IDS = torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(1))


def our_gpt():
    torch.manual_seed(0)
    return build_model("gpt", "gpt-tiny", vocab_size=64).eval()


def our_llama():
    torch.manual_seed(0)
    return build_model("llama", "llama-tiny", vocab_size=64).eval()


def logits(model):
    """Logits from a transformers model (`.logits`) or one of ours (`(logits, loss)`)."""
    with torch.no_grad():
        out = model(IDS)
    return out[0] if isinstance(out, tuple) else out.logits


def peft_twin(base, targets, r=4, alpha=8, fan_in_fan_out=False):
    """The base wrapped by PEFT (with a random B, so the update is not zero) and by us, with equal A/B."""
    peft_model = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(
        r=r, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, fan_in_fan_out=fan_in_fan_out)).eval()
    torch.manual_seed(2)
    for name, param in peft_model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    ours = copy.deepcopy(base)
    add_lora(ours, LoraConfig(r=r, alpha=alpha, targets=targets))
    state = {k.removeprefix("base_model.model.").replace(".default", ""): v
             for k, v in peft_model.state_dict().items() if "lora_" in k}
    missing = {k for k in ours.state_dict() if "lora_" in k} ^ state.keys()
    assert not missing
    ours.load_state_dict(state, strict=False)
    return peft_model, ours.eval()


@pytest.mark.parametrize(("make", "targets", "fan_in_fan_out"), [
    (tiny_llama, ["q_proj", "v_proj", "down_proj"], False),
    (tiny_gpt2, ["c_attn", "c_proj"], True),  # GPT-2's Conv1D stores weights transposed
    (our_gpt, ["q_proj", "out_proj", "up", "down"], False),
    (our_llama, ["q_proj", "v_proj", "gate"], False),
])
def test_forward_and_merge_equal_peft(make, targets, fan_in_fan_out):
    base = make()
    peft_model, ours = peft_twin(base, targets, fan_in_fan_out=fan_in_fan_out)
    assert (logits(ours) - logits(base)).abs().max() > 1e-3  # the update is real
    assert (logits(ours) - logits(peft_model)).abs().max() < TOL

    merge_lora(ours)
    assert (logits(ours) - logits(peft_model)).abs().max() < TOL
    unmerge_lora(ours)
    assert (logits(ours) - logits(peft_model)).abs().max() < TOL

    peft_merged = peft_model.merge_and_unload().state_dict()
    ours_merged = merge_and_unload(ours).state_dict()
    assert ours_merged.keys() == base.state_dict().keys() == peft_merged.keys()
    assert max((ours_merged[k] - peft_merged[k]).abs().max().item() for k in peft_merged) < TOL


def test_default_targets_are_peft_all_linear():
    for make in (tiny_llama, tiny_gpt2):
        base = make()
        peft_model = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(r=2, target_modules="all-linear"))
        peft_names = {name.removeprefix("base_model.model.") for name, m in peft_model.named_modules()
                      if hasattr(m, "base_layer") and hasattr(m, "lora_A")}
        assert set(select_targets(base)) == peft_names
        assert "lm_head" not in peft_names


def test_target_patterns():
    base = tiny_llama()
    assert select_targets(base, ["q_proj"]) == ["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"]
    assert select_targets(base, ["layers.1.*_proj"]) == [n for n in select_targets(base) if ".layers.1." in n]
    assert select_targets(base, r"model\.layers\.0\.mlp\.(up|down)_proj") == [
        "model.layers.0.mlp.up_proj", "model.layers.0.mlp.down_proj"]
    assert select_targets(base, ["self_attn"]) == []  # only linear layers are candidates
    with pytest.raises(UserError, match="no linear layer matches"):
        add_lora(base, LoraConfig(targets=["self_attn"]))


def test_init_is_a_no_op_and_only_adapters_train():
    base = tiny_llama()
    model = copy.deepcopy(base)
    add_lora(model, LoraConfig(r=4, alpha=8, dropout=0.1))
    model.eval()
    assert torch.equal(logits(model), logits(base))
    for layer in lora_layers(model).values():
        fan_in = layer.lora_A.in_features
        bound = 1 / math.sqrt(fan_in)  # kaiming_uniform_(a=√5) on an (r, in) weight
        assert not layer.lora_B.weight.any() and layer.lora_A.weight.abs().max() <= bound
        assert layer.lora_A.weight.std() > bound / 3
    trainable, total = trainable_share(model)
    expected = sum(layer.r * (layer.lora_A.in_features + layer.lora_B.out_features)
                   for layer in lora_layers(model).values())
    assert trainable == expected and trainable < total / 5
    assert all(("lora_" in name) == p.requires_grad for name, p in model.named_parameters())

    model.train()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model(IDS, labels=IDS).loss.backward()
    optimizer.step()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in frozen.items())
    assert any(layer.lora_B.weight.any() for layer in lora_layers(model).values())


def test_adapter_round_trip_and_peft_interop(tmp_path):
    base = tiny_llama()
    peft_model, ours = peft_twin(base, ["q_proj", "v_proj"])
    save_adapter(ours, tmp_path / "ours")
    assert sorted(os.listdir(tmp_path / "ours")) == [ADAPTER_CONFIG, ADAPTER_WEIGHTS]
    assert json.loads((tmp_path / "ours" / ADAPTER_CONFIG).read_text())["r"] == 4

    reloaded = copy.deepcopy(base)
    load_adapter(reloaded, tmp_path / "ours")
    assert torch.equal(logits(reloaded.eval()), logits(ours))

    in_peft = peft.PeftModel.from_pretrained(copy.deepcopy(base), str(tmp_path / "ours")).eval()
    assert (logits(in_peft) - logits(ours)).abs().max() < TOL

    peft_model.save_pretrained(str(tmp_path / "peft"))
    from_peft = copy.deepcopy(base)
    load_adapter(from_peft, tmp_path / "peft")
    assert (logits(from_peft.eval()) - logits(peft_model)).abs().max() < TOL


def test_adapter_for_another_base_is_refused_and_leaves_the_model_alone(tmp_path):
    big = tiny_llama()
    add_lora(big, LoraConfig(r=2, targets=["q_proj"]))
    save_adapter(big, tmp_path)
    torch.manual_seed(0)
    small = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2))
    with pytest.raises(UserError, match="shape"):
        load_adapter(small, tmp_path)
    assert not lora_layers(small) and all(p.requires_grad for p in small.parameters())
    (tmp_path / ADAPTER_WEIGHTS).write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="unreadable"):
        load_adapter(tiny_llama(), tmp_path)


def test_config_errors():
    with pytest.raises(UserError, match="rank"):
        LoraConfig(r=0)
    with pytest.raises(UserError, match="dropout"):
        LoraConfig(dropout=1.0)
    model = tiny_llama()
    add_lora(model, LoraConfig(r=2))
    with pytest.raises(UserError, match="already"):
        add_lora(model, LoraConfig(r=2))
    assert isinstance(model.model.layers[0].self_attn.q_proj, LoraLinear)


def test_our_model_default_targets_skip_the_tied_head_and_merge_back_to_a_plain_model(tmp_path):
    base = our_gpt()
    model = copy.deepcopy(base)
    names = add_lora(model, LoraConfig(r=2))
    assert "lm_head" not in names and len(names) == 2 * 6  # q, k, v, out, up, down per block
    for layer in lora_layers(model).values():
        torch.nn.init.normal_(layer.lora_B.weight, std=0.05)
    expected = logits(model)
    save_model(merge_and_unload(model), tmp_path)
    assert (logits(load_model(tmp_path).eval()) - expected).abs().max() < 1e-5


def test_command_line_spec():
    assert LoraConfig.from_spec("r=4,alpha=8,targets=q_proj+v_proj") == LoraConfig(4, 8.0, 0.0, ["q_proj", "v_proj"])
    assert LoraConfig.from_spec("r=16") == LoraConfig(16, 32.0, 0.0, None)  # alpha defaults to 2r
    assert LoraConfig.from_spec("dropout=0.1,targets=all-linear").dropout == 0.1
    for bad in ("rank=4", "r=four", "r=0", "targets="):
        with pytest.raises(UserError):
            LoraConfig.from_spec(bad)
