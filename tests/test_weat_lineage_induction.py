"""WEAT (effect size and permutation p against direct formulas), data lineage records, and the 2-layer
attention-only model that grows an induction head."""

from __future__ import annotations

import hashlib
import itertools
import json

import numpy as np
import pytest
import torch

from lm2llm.bias.weat import association, weat
from lm2llm.data.lineage import describe_input, record_lineage
from lm2llm.interpret.induction import head_scores, induction_pattern, repeated_random_tokens
from lm2llm.interpret.induction_training import (
    AttentionOnly,
    InductionConfig,
    perfect_score,
    train_induction,
    varied_repeats,
)


def test_weat_effect_size_and_exact_p_equal_the_definitions():
    rng = np.random.default_rng(0)
    x, y, a, b = (rng.normal(size=(4, 6)) for _ in range(4))
    result = weat(x, y, a, b)

    def cos(u, v):
        return u @ v / np.linalg.norm(u) / np.linalg.norm(v)

    def s(w):
        return np.mean([cos(w, v) for v in a]) - np.mean([cos(w, v) for v in b])

    scores = [s(w) for w in np.concatenate([x, y])]
    assert association(x, a, b) == pytest.approx(scores[:4])
    assert result.effect_size == pytest.approx((np.mean(scores[:4]) - np.mean(scores[4:])) / np.std(scores, ddof=1))
    observed = sum(scores[:4]) - sum(scores[4:])
    partitions = [sum(scores[i] for i in c) - sum(scores[i] for i in range(8) if i not in c)
                  for c in itertools.combinations(range(8), 4)]
    assert result.exact and result.permutations == 70
    assert result.p_value == pytest.approx(np.mean([p >= observed - 1e-12 for p in partitions]))


def test_weat_finds_a_planted_association_and_not_a_random_one():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(8, 16)), rng.normal(size=(8, 16))
    x = a[:8] + rng.normal(scale=0.5, size=(8, 16))  # X near A, Y near B
    y = b[:8] + rng.normal(scale=0.5, size=(8, 16))
    planted = weat(x, y, a, b)
    assert planted.effect_size > 1.5 and planted.p_value < 0.01
    noise = weat(rng.normal(size=(8, 16)), rng.normal(size=(8, 16)), a, b)
    assert noise.p_value > 0.01


def test_lineage_records_files_licence_provenance_and_parents(tmp_path):
    data = tmp_path / "comments"
    data.mkdir()
    (data / "train.tsv").write_text("text\tlabel\n연락처 010-1234-5678 입니다\t0\nhello a@b.com\t1\n", encoding="utf-8")
    (data / "LICENSE.md").write_text("Attribution-ShareAlike 4.0 International\n\nterms...\n")
    (data / "ATTRIBUTION.md").write_text("# Comments\n\n- Source: https://example.org/comments, file x.tsv\n")
    entry = describe_input(data)
    files = {f["path"].rsplit("/", 1)[1]: f["sha256"] for f in entry["files"]}
    assert files["train.tsv"] == hashlib.sha256((data / "train.tsv").read_bytes()).hexdigest()
    assert entry["licence"] == "Attribution-ShareAlike 4.0 International"
    assert entry["provenance"] == "https://example.org/comments, file x.tsv"
    assert entry["pii"] == {"scrubbed": False, "found": {"PHONE": 1, "EMAIL": 1}}
    assert describe_input("python-docs")["licence"] == "PSF-2.0"
    base, child = tmp_path / "base", tmp_path / "child"
    base.mkdir(), child.mkdir()
    record_lineage(base, [data])
    lineage = record_lineage(child, ["synthetic preference pairs"], parents=[base])
    assert lineage["parents"][0]["data"][0]["source"] == "comments"
    card = (child / "DATA.md").read_text()
    assert "Attribution-ShareAlike" in card and "generated" in json.dumps(lineage["data"])


def test_a_perfect_induction_head_scores_the_perfect_score():
    ids = repeated_random_tokens(50, 10, 3, seed=0)
    pattern = torch.stack([induction_pattern(row) for row in ids])
    rows = pattern.sum(-1, keepdim=True)
    ideal = torch.where(rows > 0, pattern / rows.clamp(min=1), torch.eye(20).expand(3, 20, 20))  # no match: self
    assert float(head_scores([ideal.unsqueeze(1)], ids)) == pytest.approx(perfect_score(ids), abs=1e-6)
    assert 0.5 <= perfect_score(ids) < 0.6


def test_attention_only_model_trains_and_logs_both_halves():
    config = InductionConfig(steps=6, score_every=3, max_seconds=30, d_model=16, n_head=2, batch_size=4)
    model, run = train_induction(config)
    logits, attention = model(repeated_random_tokens(config.vocab_size, config.half_length, 2))
    assert isinstance(model, AttentionOnly) and len(attention) == 2
    assert torch.allclose(attention[1].sum(-1), torch.ones(2, 2, 32)) and logits.shape == (2, 32, config.vocab_size)
    assert run.score_steps == [0, 3, 6] and len(run.second_half_loss) == 6
    assert run.first_half_loss[0] == pytest.approx(run.chance_loss, abs=0.5)


def test_training_rows_repeat_a_stretch_and_the_last_position_continues_copies():
    config = InductionConfig(batch_size=400)
    ids, copied = varied_repeats(config, torch.Generator().manual_seed(0))
    assert ids.shape == (400, 33) and copied.shape == (400, 32)
    for row, mask in zip(ids, copied, strict=True):
        targets = mask.nonzero().flatten() + 1  # position t of the mask predicts token t + 1
        distance = next(d for d in range(8, 17) if bool((row[targets] == row[targets - d]).all()))
        assert 8 <= distance <= 16 and len(targets) >= 1
    # copies may run past the end, so the last input position continues a copy, as it does on the probe
    assert copied[:, -1].float().mean() > 0.3
