"""The measurements behind tour chapters 1.2, 2.1, 3.1 and 5, on tiny settings."""

from __future__ import annotations

import json
import math

import torch

from lm2llm.models import build_model
from lm2llm.tour.chapters import ch01_02_rnn_limits as rnn_limits
from lm2llm.tour.chapters import ch02_01_transformer as transformer_chapter
from lm2llm.tour.minitrain import train_briefly


def test_rnn_gradient_vanishes_transformer_gradient_does_not():
    torch.manual_seed(0)
    vocab = rnn_limits.VOCAB
    rnn = build_model("rnn", vocab_size=vocab, d_embed=32, d_hidden=32)
    gpt = build_model("gpt", vocab_size=vocab, d_model=32, n_head=2, n_layer=1, context_length=40)
    rnn_grad, gpt_grad = rnn_limits.gradient_by_distance(rnn, 40), rnn_limits.gradient_by_distance(gpt, 40)
    assert rnn_grad.shape == (40,)
    assert rnn_grad[-1] / rnn_grad[0] < 1e-6
    assert gpt_grad[-1] / gpt_grad[0] > 1e-3


def test_recall_task_and_trigram_window():
    ids, targets = rnn_limits.recall_batch(5, 4)
    assert ids.shape == (4, 6) and (ids[:, -1] == rnn_limits.QUERY).all()
    assert torch.equal(targets[:, -1], ids[:, 0]) and (targets[:, :-1] == -100).all()
    accuracy = rnn_limits.trigram_recall_accuracy([1, 8], train_batches=20, batch=32)
    assert accuracy[1] == 1.0  # the key is inside the trigram's window
    assert accuracy[8] < 0.35  # beyond it: about chance (1/8)


def test_lstm_matching_has_about_the_same_parameters():
    gpt = build_model("gpt", vocab_size=rnn_limits.VOCAB, d_model=64, n_head=4, n_layer=2, context_length=32)
    lstm = rnn_limits.lstm_matching(gpt.num_params(), d_embed=64)
    assert abs(lstm.num_params() / gpt.num_params() - 1) < 0.01


def test_recall_gradient_probe_leaves_the_model_unchanged_and_step_times_by_length():
    torch.manual_seed(0)
    lstm = build_model("lstm", vocab_size=rnn_limits.VOCAB, d_embed=8, d_hidden=8, use_torch=True)
    before = [p.clone() for p in lstm.parameters()]
    ratio = rnn_limits.recall_gradient_ratio(lstm, 6, batch=4)
    assert 0 < ratio < 1 and all(torch.equal(a, b) for a, b in zip(before, lstm.parameters(), strict=True))
    seconds = rnn_limits.interleaved_step_seconds({"LSTM": lstm}, 32, [4, 16], rounds=2)
    assert set(seconds["LSTM"]) == {4, 16} and all(len(s) == 2 and min(s) > 0 for s in seconds["LSTM"].values())
    # a verdict needs the rounds' whole range on one side of its threshold
    assert [rnn_limits.ratio_verdict(r, 1.0) for r in ((1.1, 1.3), (0.5, 0.9), (0.9, 1.1))] == [True, False, None]
    assert rnn_limits.range_coverage(rnn_limits.ROUNDS) > 0.95


def test_attention_is_order_blind_and_rope_is_relative():
    assert transformer_chapter.order_blindness_gap() < 1e-5
    assert transformer_chapter.rope_shift_gap() < 1e-4


def test_train_briefly_learns_a_recall_task():
    torch.manual_seed(0)
    model = build_model("gpt", vocab_size=rnn_limits.VOCAB, d_model=16, n_head=2, n_layer=1, context_length=4)
    losses = train_briefly(model, lambda: rnn_limits.recall_batch(3, 16), steps=40, lr=1e-2)
    # below log(8), the loss of guessing uniformly among the 8 keys: the model reads the key back
    assert sum(losses[-10:]) / 10 < 0.9 * math.log(rnn_limits.N_KEYS) < sum(losses[:5]) / 5
    assert not model.training


def test_counting_chapters_run(cli, tmp_path):
    result = cli("tour", "--quick", "--only", "5", "--out", tmp_path, "--json")
    assert result.code == 0, result.err
    chapter = json.loads(result.out)["chapters"][-1]
    assert all(claim["holds"] for claim in chapter["claims"])
    assert "HyperCLOVA X" in (tmp_path / "report.md").read_text()


def test_steps_until_stops_when_learned():
    from lm2llm.tour.minitrain import steps_until

    model = build_model("gpt", vocab_size=rnn_limits.VOCAB, d_model=16, n_head=2, n_layer=1, context_length=4)
    calls = []
    assert steps_until(model, lambda: rnn_limits.recall_batch(3, 4), lambda: calls.append(1) or len(calls) == 2,
                       max_steps=20, check_every=3) == 6
    assert steps_until(model, lambda: rnn_limits.recall_batch(3, 4), lambda: False, max_steps=4, check_every=3) is None
