"""Preference losses against TRL: DPO/IPO against `DPOTrainer._compute_loss`, Bradley–Terry against
`RewardTrainer.compute_loss`, each run on the same tiny transformers model.

TRL 1.16 computes these losses inside its trainers' loss methods, not in standalone functions, so the test
builds the minimum trainer object those methods read (`object.__new__` plus the attributes the method uses)
and calls TRL's own method on it. The models are real (tiny, random) Llama models from transformers.
"""

from __future__ import annotations

import types
from collections import defaultdict

import pytest
import torch

from lm2llm.align.losses import (
    bradley_terry_losses,
    dpo_loss,
    pairwise_accuracy,
    sequence_logprobs,
    token_logprobs,
)

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")

VOCAB, PROMPT_LEN, LENGTH, PAIRS = 40, 4, 9, 3


def _llama_config(**extra) -> transformers.LlamaConfig:
    return transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=32, **extra,
    )


def _minimal_trainer(cls, model, **fields):
    """A TRL trainer object carrying only what its loss method reads (no dataset, no training arguments)."""
    from accelerate import Accelerator

    trainer = object.__new__(cls)
    vars(trainer).update(
        model=model, accelerator=Accelerator(cpu=True), _tp_size=1, _total_train_tokens=0,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)}, **fields,
    )
    return trainer


@pytest.fixture(scope="module")
def pair_batch():
    """[chosen; rejected] sequences with a shared prompt and answers of different lengths (right-padded)."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1, VOCAB, (2 * PAIRS, LENGTH), generator=generator)
    ids[PAIRS:, :PROMPT_LEN] = ids[:PAIRS, :PROMPT_LEN]
    attention = torch.ones_like(ids)
    completion = torch.zeros_like(ids)
    completion[:, PROMPT_LEN:] = 1
    for row, pad in ((1, 2), (PAIRS + 2, 3)):  # shorter answers, padded on the right
        attention[row, -pad:] = completion[row, -pad:] = 0
        ids[row, -pad:] = 0
    return ids, attention, completion


@pytest.fixture(scope="module")
def dpo_models():
    torch.manual_seed(0)
    policy, reference = (transformers.LlamaForCausalLM(_llama_config()).eval() for _ in range(2))
    return policy, reference


@pytest.mark.parametrize("loss_type, beta", [("sigmoid", 0.1), ("sigmoid", 2.0), ("ipo", 0.1), ("ipo", 0.5)])
def test_dpo_and_ipo_equal_trl(dpo_models, pair_batch, loss_type, beta):
    from trl import DPOTrainer
    from trl.trainer.utils import add_fused_lm_head

    policy, reference = dpo_models
    ids, attention, completion = pair_batch
    with torch.no_grad():
        logps = {name: sequence_logprobs(model(input_ids=ids, attention_mask=attention).logits, ids, completion)
                 for name, model in (("policy", policy), ("reference", reference))}
    lengths = completion.sum(-1)
    ours = dpo_loss(*logps["policy"].chunk(2), *logps["reference"].chunk(2), beta=beta, loss_type=loss_type,
                    chosen_lengths=lengths[:PAIRS], rejected_lengths=lengths[PAIRS:])

    # TRL scores with its fused LM head; patch copies so the shared fixtures stay plain models.
    trl_policy, trl_reference = (type(m)(m.config).eval() for m in (policy, reference))
    trl_policy.load_state_dict(policy.state_dict())
    trl_reference.load_state_dict(reference.state_dict())
    for model in (trl_policy, trl_reference):
        add_fused_lm_head(model, outputs=("log_probs", "entropy", "mean_logits", "is_top1"))
    trainer = _minimal_trainer(
        DPOTrainer, trl_policy, ref_model=trl_reference, beta=beta, loss_types=[loss_type], loss_weights=[1.0],
        f_divergence_type="reverse_kl", ld_alpha=None, precompute_ref_logps=False, use_weighting=False,
        aux_loss_enabled=False, args=types.SimpleNamespace(gradient_checkpointing_kwargs=None),
    )
    with torch.no_grad():
        trl_loss = DPOTrainer._compute_loss(trainer, trl_policy, {
            "input_ids": ids, "attention_mask": attention, "completion_mask": completion}, False)
    metrics = trainer._metrics["eval"]
    torch.testing.assert_close(ours.loss, trl_loss, rtol=1e-5, atol=1e-6)
    stats = ours.stats()
    for key, trl_key in (("rewards_chosen", "rewards/chosen"), ("rewards_rejected", "rewards/rejected"),
                         ("rewards_margin", "rewards/margins"), ("rewards_accuracy", "rewards/accuracies")):
        # float32 sums of ~15-nat log-probs through two code paths agree to ~1e-6 nats; β scales that up
        assert stats[key] == pytest.approx(metrics[trl_key][0], abs=1e-5 * max(beta, 1.0)), key
    assert logps["policy"][:PAIRS].mean().item() == pytest.approx(metrics["logps/chosen"][0], rel=1e-5)


def test_reward_loss_equals_trl_reward_trainer(pair_batch):
    from trl import RewardTrainer

    torch.manual_seed(1)
    model = transformers.LlamaForSequenceClassification(_llama_config(num_labels=1, pad_token_id=0)).eval()
    ids, attention, _ = pair_batch
    for margin in (None, torch.tensor([0.0, 0.5, 2.0])):
        inputs = {"input_ids": ids, "attention_mask": attention}
        if margin is not None:
            inputs["margin"] = margin
        trainer = _minimal_trainer(RewardTrainer, model, args=types.SimpleNamespace(center_rewards_coefficient=None))
        with torch.no_grad():
            trl_loss = RewardTrainer.compute_loss(trainer, model, dict(inputs))
            chosen, rejected = model(input_ids=ids, attention_mask=attention).logits.squeeze(-1).chunk(2)
        ours = bradley_terry_losses(chosen, rejected, 0.0 if margin is None else margin).mean()
        torch.testing.assert_close(ours, trl_loss, rtol=1e-6, atol=1e-7)
        assert pairwise_accuracy(chosen, rejected) == pytest.approx(trainer._metrics["eval"]["accuracy"][0])


def test_bradley_terry_hand_values_and_gradient_direction():
    chosen = torch.tensor([2.0, 0.0], requires_grad=True)
    rejected = torch.tensor([0.0, 0.0])
    loss = bradley_terry_losses(chosen, rejected).mean()
    expected = (torch.log1p(torch.exp(torch.tensor(-2.0))) + torch.log(torch.tensor(2.0))) / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert (chosen.grad < 0).all()  # descending the loss raises the chosen reward
    # a margin demands a larger gap: the same rewards now cost more
    assert bradley_terry_losses(chosen, rejected, 1.0).mean() > loss
    assert pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, 0.0, 3.0])) == pytest.approx(1 / 3)


def test_token_logprobs_match_trl_selective_log_softmax_and_respect_temperature():
    from trl.trainer.utils import selective_log_softmax

    logits = torch.randn(2, 5, VOCAB, generator=torch.Generator().manual_seed(2))
    targets = torch.randint(0, VOCAB, (2, 5), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(token_logprobs(logits, targets), selective_log_softmax(logits, targets))
    torch.testing.assert_close(token_logprobs(logits, targets, temperature=0.7),
                               selective_log_softmax(logits / 0.7, targets))


def test_dpo_rejects_unknown_type_and_ipo_without_lengths():
    x = torch.zeros(2)
    with pytest.raises(ValueError, match="loss_type"):
        dpo_loss(x, x, x, x, loss_type="hinge")
    with pytest.raises(ValueError, match="lengths"):
        dpo_loss(x, x, x, x, loss_type="ipo")
