"""Distillation losses: equal to TRL's generalized_jsd_loss (GKD) on random logits."""

from __future__ import annotations

import pytest
import torch

from lm2llm.compress.distill import generalized_jsd_loss, hinton_loss


@pytest.fixture(scope="module")
def trl_loss():
    gkd = pytest.importorskip("trl.experimental.gkd.gkd_trainer", reason="trl is not installed")
    return gkd.GKDTrainer.generalized_jsd_loss


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean"])
def test_equal_to_trl(trl_loss, beta, temperature, reduction):
    torch.manual_seed(0)
    student, teacher = torch.randn(3, 7, 50) * 3, torch.randn(3, 7, 50) * 3
    labels = torch.randint(0, 50, (3, 7))
    labels[0, :3] = -100
    for given in (labels, None):
        ours = generalized_jsd_loss(student, teacher, given, beta=beta, temperature=temperature, reduction=reduction)
        theirs = trl_loss(student, teacher, given, beta=beta, temperature=temperature, reduction=reduction)
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)


def test_forward_kl_is_zero_only_for_the_teacher_and_gradients_flow():
    torch.manual_seed(0)
    teacher = torch.randn(2, 5, 20)
    assert float(generalized_jsd_loss(teacher.clone(), teacher, beta=0.0)) == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(2, 5, 20, requires_grad=True)
    loss = hinton_loss(student, teacher, torch.randint(0, 20, (2, 5)), temperature=2.0)
    loss.backward()
    assert float(loss.detach()) > 0 and student.grad.abs().sum() > 0


def test_hinton_soft_term_scales_as_t_squared():
    """At high T the soft gradient shrinks as 1/T²; the T² factor keeps its size the same across T."""
    torch.manual_seed(0)
    teacher, student = torch.randn(1, 4, 30), torch.randn(1, 4, 30, requires_grad=True)
    norms = []
    for temperature in (4.0, 8.0):
        student.grad = None
        hinton_loss(student, teacher, torch.zeros(1, 4, dtype=torch.long), temperature=temperature, soft_weight=1.0).backward()
        norms.append(float(student.grad.norm()))
    assert norms[1] / norms[0] == pytest.approx(1.0, rel=0.1)


def test_distillation_objective_trains_a_student_and_evaluates_with_cross_entropy():
    from lm2llm.compress.distill import Distillation
    from lm2llm.models import build_model
    from lm2llm.training.objectives import CausalLM

    torch.manual_seed(0)
    teacher = build_model("llama", "llama-tiny", vocab_size=50)
    student = build_model("llama", "llama-tiny", vocab_size=50, n_layer=1)
    ids = torch.randint(0, 50, (2, 9))
    batch = {"ids": ids[:, :-1], "targets": ids[:, 1:]}
    objective = Distillation(teacher, temperature=2.0)
    student.train()
    loss = objective.loss_sum(student, batch) / objective.weight(batch)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    student.eval()
    with torch.no_grad():
        assert torch.equal(objective.loss_sum(student, batch), CausalLM().loss_sum(student, batch))


def test_precomputed_top_k_targets_equal_the_live_teacher_when_k_is_the_vocabulary():
    from lm2llm.compress.distill import Distillation
    from lm2llm.compress.distill_experiment import (
        PrecomputedDistillation,
        TeacherTargets,
        WindowBatches,
        top_k_hinton_loss,
    )
    from lm2llm.models import build_model

    torch.manual_seed(0)
    teacher = build_model("llama", "llama-tiny", vocab_size=50).eval()
    student = build_model("llama", "llama-tiny", vocab_size=50, n_layer=1).train()
    windows = torch.randint(0, 50, (6, 9))
    for k in (50, 8):
        targets = TeacherTargets.of(teacher, windows[:, :-1], k, batch=4)
        assert targets.values.shape == (6, 8, k) and (k == 50 or targets.nbytes() < 6 * 8 * 50 * 2)
        batch = WindowBatches(windows, targets, batch_size=3, seed=0).next_batch()
        stored = batch["teacher_values"], batch["teacher_indices"], batch["teacher_rest"]
        rebuilt = TeacherTargets.log_probs(*stored, 50)
        torch.testing.assert_close(rebuilt.exp().sum(-1), torch.ones(3, 8), atol=2e-3, rtol=0)
        logits = torch.randn(3, 8, 50) * 2
        batch["targets"] = batch["targets"].clone()
        batch["targets"][0, :2] = -100  # (targets are a view of the same windows as ids)
        closed = top_k_hinton_loss(logits, *stored, batch["targets"], temperature=2.0, soft_weight=0.7)
        dense = hinton_loss(logits, rebuilt, batch["targets"], temperature=2.0, soft_weight=0.7)
        torch.testing.assert_close(closed, dense, rtol=1e-5, atol=1e-5)  # the closed form is the dense loss
        precomputed = PrecomputedDistillation(temperature=2.0, soft_weight=0.5).loss_sum(student, batch)
        live = Distillation(teacher, temperature=2.0, soft_weight=0.5).loss_sum(student, batch)
        if k == 50:  # only fp16 rounding of the stored log-probabilities separates the two
            torch.testing.assert_close(precomputed, live, rtol=1e-3, atol=1e-3)
        else:
            assert float(precomputed) != pytest.approx(float(live), rel=1e-6)


def test_window_batches_give_both_students_the_same_tokens_in_the_same_order():
    from lm2llm.compress.distill_experiment import TeacherTargets, WindowBatches

    windows = torch.arange(50).view(5, 10)
    targets = TeacherTargets(torch.zeros(5, 9, 1).half(), torch.zeros(5, 9, 1).int(), torch.zeros(5, 9), 50)
    first, second = WindowBatches(windows, targets, 2, seed=3), WindowBatches(windows, targets, 2, seed=3)
    seen = [first.next_batch()["ids"] for _ in range(5)]
    assert all(torch.equal(a, second.next_batch()["ids"]) for a in seen)
    assert sorted(int(row[0]) for batch in seen for row in batch) == sorted([0, 10, 20, 30, 40] * 2)
