"""The groundedness check, RAGAS-style faithfulness and ALCE citation recall/precision; retrieval metrics."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm2llm.prompting.scoring import answer_match
from lm2llm.rag import encyclopedia
from lm2llm.rag.grounding import check_answer, split_answer
from lm2llm.rag.metrics import auroc, reciprocal_rank
from lm2llm.stats import wilson_interval

PASSAGES = ["Loumolux is a town in the province of Dudrotria. Loumolux was founded in 1630 by Nezaem Kralias.",
            "Traeviath has a population of 377600."]


def test_split_answer_reads_citations():
    sentences = split_answer("Loumolux was founded in 1630 [1][2]. It lies in Dudrotria [1, 3]. [2]")
    assert [(s.text, s.citations) for s in sentences] == [
        ("Loumolux was founded in 1630.", (1, 2)), ("It lies in Dudrotria.", (1, 3, 2))]


@pytest.mark.parametrize(("answer", "faithfulness", "recall", "precision"), [
    ("Loumolux was founded in 1630 [1].", 1.0, 1.0, 1.0),
    ("Loumolux was founded in 1632 [1].", 0.0, 0.0, 0.0),  # an invented year
    ("Loumolux was founded in 1630 [1][2].", 1.0, 1.0, 0.5),  # [2] is irrelevant: alone no, removed no change
    ("Loumolux was founded by Nezaem Kralias.", 1.0, 0.0, 0.0),  # supported by the context, but cites nothing
    ("Loumolux is in the province of Dudrotria [7].", 1.0, 0.0, 0.0),  # a passage that does not exist
    ("", 1.0, 0.0, 0.0),  # no claims: nothing invented, nothing cited
])
def test_scores(answer, faithfulness, recall, precision):
    result = check_answer(answer, PASSAGES)
    assert (result.faithfulness, result.citation_recall, result.citation_precision) == (faithfulness, recall, precision)


def test_a_citation_needed_together_is_precise():
    passages = ["Loumolux was founded in 1630.", "Loumolux exports amber."]
    result = check_answer("Loumolux was founded in 1630 and exports amber [1][2].", passages)
    assert result.citation_recall == 1.0 and result.citation_precision == 1.0


def test_korean_answer():
    article = encyclopedia.articles("ko")[0][1]
    town = encyclopedia.towns("ko")[0]
    good = check_answer(f"{town.name}의 인구는 {town.population}명이다 [1].", [article])
    bad = check_answer(f"{town.name}의 인구는 {town.population + 100}명이다 [1].", [article])
    assert good.citation_recall == 1.0 and bad.citation_recall == 0.0


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=120), st.lists(st.text(max_size=80), max_size=4))
def test_never_nan_always_in_range_and_deterministic(answer, passages):
    first = check_answer(answer, passages)
    for value in (first.faithfulness, first.citation_recall, first.citation_precision, first.score):
        assert not math.isnan(value) and 0.0 <= value <= 1.0
    assert check_answer(answer, passages) == first


def test_metrics():
    assert answer_match("It was founded in 1,630 [1].", "1630") and not answer_match("in 16300", "1630")
    assert answer_match("노노엘의 인구는 6100명이다.", "6100")
    assert reciprocal_rank([False, True]) == 0.5 and reciprocal_rank([False]) == 0.0
    assert auroc([0.9, 0.8, 0.1], [True, True, False]) == 1.0 and auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([1.0], [True]) == 0.5
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and 0.2 < high < 0.35


def test_encyclopedia_is_seeded_and_unique():
    for lang in ("en", "ko"):
        towns = encyclopedia.towns(lang)
        assert len({t.name for t in towns}) == 200
        questions = encyclopedia.questions(lang)
        assert len(questions) == 1000 and len({q.question for q in questions}) == 1000
        assert all(q.answer in dict(encyclopedia.articles(lang))[q.gold_origin] for q in questions)


def test_post_hoc_attribution_cites_the_supporting_passage():
    from lm2llm.rag.grounding import attribute

    text, added = attribute("Traeviath has a population of 377600. It rains a lot.", PASSAGES)
    assert added == [2] and text == "Traeviath has a population of 377600 [2]. It rains a lot."
    assert attribute("Loumolux was founded in 1630 [1].", PASSAGES) == ("Loumolux was founded in 1630 [1].", [])
    assert check_answer(text, PASSAGES).citation_precision == 1.0


def test_a_sample_of_questions_covers_every_attribute():
    from lm2llm.rag.evaluate import load_task

    items = load_task("encyclopedia-en", 20)
    assert len(items) == 20 and len({item.question.split()[1] for item in items}) > 2


def test_korean_law_questions_point_at_real_sentences():
    from lm2llm.data.sources import load_documents
    from lm2llm.rag.evaluate import load_task

    law = " ".join(" ".join(text.split()) for text in load_documents("korean-law"))
    items = load_task("korean-law-qa")
    assert len(items) == 12 and all(item.evidence in law and item.answer in item.evidence for item in items)
