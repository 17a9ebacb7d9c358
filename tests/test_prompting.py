"""Prompt techniques as data, answer extraction, and the scoring loop on a small chat model."""

from __future__ import annotations

import json

import pytest

from lm2llm.cli import main
from lm2llm.errors import UserError
from lm2llm.prompting.extract import extract_cot, extract_json, extract_plain
from lm2llm.prompting.run import majority, run_technique, task_records
from lm2llm.prompting.shots import random_shots, similar_shots
from lm2llm.prompting.techniques import get_technique, techniques
from lm2llm.stats import wilson_interval


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    from lm2llm.finetune.tasks import make_suite
    from lm2llm.serve.demo import save_demo_run

    train, _ = make_suite(30, 0)
    texts = [m["content"] for r in train for m in r.messages]
    return save_demo_run(tmp_path_factory.mktemp("chat") / "run", texts, vocab_size=400, n_layer=1, d_model=32,
                         n_head=2, context_length=512)


def test_every_technique_renders():
    table = techniques()
    assert {"bare", "zero_shot", "few_shot_random", "few_shot_similar", "chain_of_thought", "role", "json_format",
            "self_consistency"} <= set(table)
    messages = table["few_shot_random"].messages("What is 2 + 2?", [("What is 1 + 1?", "2")])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert table["role"].messages("q")[0]["role"] == "system"
    with pytest.raises(UserError, match="unknown technique"):
        get_technique("telepathy")


def test_extraction():
    assert extract_plain("Answer: 42.\nmore") == "42"
    assert extract_cot("3 + 4 is 7, plus 1 is 8.\nAnswer: 8") == "8"
    assert extract_cot("We add.\nSo 8") == "So 8"
    assert extract_json('Sure: {"answer": "Busan"}') == "Busan"
    assert extract_json("Busan.") == "Busan"
    assert majority(["8", "7", "8 ", "7"]) == "8"


def test_shots_come_from_the_pool_and_similar_ones_are_similar():
    test, pool = task_records("unit_conversion", 3)
    assert not {r.prompt for r in test} & {q for q, _ in pool}
    assert random_shots(pool, 3, 2, seed=1) == random_shots(pool, 3, 2, seed=1)
    question = "Convert 5 kg to g."
    chosen = similar_shots(pool[:60], 3, [question])[0]
    assert len(chosen) == 3 and all(" kg to g." in q for q, _ in chosen)


def test_run_technique_reports_accuracy_interval_and_cost(chat_run):
    from lm2llm.prompting.render import load_generator

    generator = load_generator(str(chat_run))
    plain = run_technique(generator, get_technique("zero_shot"), "facts", n=4)
    voted = run_technique(generator, get_technique("self_consistency"), "facts", n=2)
    assert plain["chance"] == pytest.approx(1 / 3) and 0 <= plain["accuracy"] <= 1
    assert (plain["low"], plain["high"]) == wilson_interval(plain["accuracy"] * 4, 4)
    # five samples per question: five times the prompt tokens of one
    assert voted["prompt_tokens"] > 4 * plain["prompt_tokens"]


def test_cli_prompt_run(chat_run, capsys):
    assert main(["prompt", "run", str(chat_run), "--technique", "json_format", "--task", "addition", "--n", "2",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)[0]
    assert result["technique"] == "json_format" and result["n"] == 2
    assert main(["prompt", "run", str(chat_run), "--task", "nope"]) == 2


def test_prompting_chapter_report_from_a_small_model(chat_run, tmp_path):
    """Chapter 6.3's claims and tables from real measurements of a small chat model (the tour runs SmolLM2)."""
    from lm2llm.prompting.render import load_generator
    from lm2llm.tour.chapters import ch06_03_prompting as chapter
    from lm2llm.tour.framework import ChapterContext

    generator = load_generator(str(chat_run))
    techniques = ("zero_shot", "few_shot_random", "few_shot_similar", "chain_of_thought", "role", "json_format")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(chapter, "TASKS", ("facts",))
        smol = chapter.measure(generator, techniques, 2)
        result = chapter.report(ChapterContext(tmp_path, quick=True, lang="en"), smol, {}, techniques, 2)
    assert len(result.claims) == 6 and result.claims[-1].kind == "demonstration"
    assert all(c.holds in (True, False, None) for c in result.claims)
    assert all(c.chance is not None for c in result.claims if c.interval is not None)
    assert (tmp_path / "techniques.png").is_file()
