"""Reward model: the score read at the last real token equals transformers' sequence classifier on the
same weights; padding distinct from end-of-sequence; normalisation; save/load round trip."""

from __future__ import annotations

import pytest
import torch

from lm2llm.align.reward_model import RewardModel, load_reward_model, save_reward_model
from lm2llm.errors import UserError
from lm2llm.models import build_model

PAD = 1


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 50, (3, 7), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # right padding
    ids[1, 5:] = PAD
    ids[2, 3] = ids[2, 6] = 0  # an end-of-sequence id inside the text is a real token, not padding
    return ids, mask


def test_score_equals_transformers_sequence_classifier():
    transformers = pytest.importorskip("transformers")
    from lm2llm.models.hf_compat import hf_config, to_hf_state_dict

    torch.manual_seed(0)
    model = RewardModel(build_model("llama", "llama-tiny", vocab_size=50)).eval()
    config = hf_config(model.config)
    config.num_labels, config.pad_token_id = 1, PAD
    hf = transformers.LlamaForSequenceClassification(config).eval()
    weights = {k: v for k, v in to_hf_state_dict(model.backbone).items() if k != "lm_head.weight"}
    weights["score.weight"] = model.backbone.lm_head.weight.detach()
    hf.load_state_dict(weights, strict=False)
    ids, mask = _batch()
    with torch.no_grad():
        model.backbone.lm_head.bias.zero_()  # transformers' score head has no bias
        theirs = hf(input_ids=ids, attention_mask=mask).logits.squeeze(-1)
        ours = model.score(ids, mask)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_last_real_token_comes_from_the_mask_for_left_and_right_padding():
    torch.manual_seed(1)
    model = RewardModel(build_model("gpt", "gpt-tiny", vocab_size=50)).eval()
    ids, mask = _batch()
    with torch.no_grad():
        right = model.score(ids, mask)
        alone = model.score(ids[1:2, :5], mask[1:2, :5])
        left_ids = torch.cat([torch.full((1, 2), PAD), ids[1:2, :5]], dim=1)
        left = model.score(left_ids, torch.cat([torch.zeros(1, 2, dtype=torch.long), mask[1:2, :5]], dim=1))
    torch.testing.assert_close(right[1:2], alone, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(left, alone, rtol=1e-5, atol=1e-5)


def test_normalise_gives_mean_zero_std_one_and_survives_save_load(tmp_path):
    torch.manual_seed(2)
    model = RewardModel(build_model("gpt", "gpt-tiny", vocab_size=50)).eval()
    ids = torch.randint(2, 50, (16, 6), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        model.normalise(model.score(ids, mask))
        scores = model.score(ids, mask)
    assert scores.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert scores.std().item() == pytest.approx(1.0, abs=1e-4)
    loaded = load_reward_model(save_reward_model(model, tmp_path / "rm")).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.score(ids, mask), scores)
    with pytest.raises(UserError, match="at least two"):
        model.normalise(torch.ones(1))
    with pytest.raises(UserError, match="not found"):
        load_reward_model(tmp_path / "missing")


def test_reward_model_needs_a_transformer():
    with pytest.raises(UserError, match="transformer backbone"):
        RewardModel(build_model("gru", "gru-small", vocab_size=50))
