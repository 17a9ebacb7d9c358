"""Chapters 6.3 (prompting) and 7.1 (hallucination and RAG) in quick mode, read from the session's tour."""

from __future__ import annotations

from conftest import chapter_result


def test_prompting_chapter_quick(quick_tour):
    chapter = chapter_result(quick_tour, "6.3")
    assert len(chapter.claims) == 6 and all(c.holds in (True, False, None) for c in chapter.claims)
    smol = chapter.metrics["results"]["smollm2"]
    assert {"zero_shot", "few_shot_similar", "chain_of_thought", "json_format"} <= set(smol)
    for per_task in smol.values():
        for result in per_task.values():
            assert 0 <= result["low"] <= result["accuracy"] <= result["high"] <= 1
    assert chapter.metrics["results"]["sft"], "chapter 4.4's fine-tuned model is measured too"
    assert (quick_tour.out_dir / "ch06_03" / "techniques.png").is_file()


def test_rag_chapter_quick(quick_tour):
    chapter = chapter_result(quick_tour, "7.1")
    claims = chapter.claims
    assert len(claims) == 8 and claims[0].holds, "our BM25 equals rank_bm25"
    retrieval = chapter.metrics["retrieval"]
    assert retrieval["encyclopedia-en"]["bm25"]["recall@5"] > 0.9
    answers = chapter.metrics["answers"]
    for kind in ("closed_book", "rag"):
        assert 0 <= answers["accuracy"][kind]["rate"] <= 1
    assert (quick_tour.out_dir / "ch07_01" / "retrieval.png").is_file()
