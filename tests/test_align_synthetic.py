"""Synthetic preference pairs over the task suite: correct and concise beats wrong, rambling or running on."""

from __future__ import annotations

from collections import Counter

import pytest

from lm2llm.align.preference import read_preferences, write_preference_jsonl
from lm2llm.align.synthetic import REJECTION_KINDS, make_preference_suite, rejected_answer
from lm2llm.finetune.tasks import exact_match, make_suite


def test_pairs_prefer_the_exact_answer_and_hold_out_unseen_prompts():
    train, held = make_preference_suite(12, 6, seed=1)
    records_train, records_test = make_suite(12, 6, seed=1)
    assert len(train) == len(records_train) and len(held) == len(records_test)
    for pair, record in zip(train + held, records_train + records_test, strict=True):
        assert pair.prompt == record.prompt_messages and pair.prompt[-1]["role"] == "user"
        assert exact_match(pair.chosen, record.answer)
        assert not exact_match(pair.rejected, record.answer)
        assert pair.kind in REJECTION_KINDS
        if pair.kind != "wrong":
            assert record.answer in pair.rejected and len(pair.rejected) > 3 * len(pair.chosen)
    prompts = lambda pairs: {p.prompt[-1]["content"] for p in pairs}  # noqa: E731
    assert not prompts(train) & prompts(held)
    # each task cycles through the kinds, so they are balanced
    counts = Counter(p.kind for p in train)
    assert max(counts.values()) - min(counts.values()) <= len({r.task for r in records_train})
    assert make_preference_suite(12, 6, seed=1) == (train, held)


def test_korean_prompts_get_korean_rejections(tmp_path):
    train, _ = make_preference_suite(3, 0, tasks=["korean_to_digits", "digits_to_korean"])
    rambling = [p for p in train if p.kind == "rambling"]
    assert rambling and all("생각해" in p.rejected for p in rambling)
    assert read_preferences(write_preference_jsonl(train, tmp_path / "ko.jsonl")) == train


def test_unknown_kind_is_rejected():
    record = make_suite(1, 0, tasks=["addition"])[0][0]
    with pytest.raises(ValueError, match="rejection kind"):
        rejected_answer(record, "rude")
