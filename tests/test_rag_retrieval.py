"""Retrieval: chunking, BM25 equal to rank_bm25 / bm25s, RRF, dense retrieval, the index on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lm2llm.errors import UserError
from lm2llm.rag.bm25 import BM25
from lm2llm.rag.chunking import chunk_text, split_sentences
from lm2llm.rag.fusion import reciprocal_rank_fusion
from lm2llm.rag.index import RagIndex
from lm2llm.rag.sources import read_sources
from lm2llm.rag.terms import terms

QUERIES = ["how do I split a string on whitespace", "assert statement debug", "the the of",
           "open a file for reading in binary mode", "exception raised when a key is missing", "조약 국회"]


@pytest.fixture(scope="module")
def corpus() -> list[list[str]]:
    return [terms(text) for _, text in read_sources(["python-docs"], limit=400)]


def test_sentences_english_and_korean():
    text = "Use str.split(), e.g. on spaces. It returns a list! 대한민국은 민주공화국이다. 모든 권력은 국민으로부터 나온다\n제2조 국민의 요건"
    assert [s.text for s in split_sentences(text)] == [
        "Use str.split(), e.g. on spaces.", "It returns a list!", "대한민국은 민주공화국이다.",
        "모든 권력은 국민으로부터 나온다", "제2조 국민의 요건"]
    assert all(text[s.start:s.end] == s.text for s in split_sentences(text))


def test_chunks_keep_sentences_and_overlap():
    sentences = [f"Sentence number {i} says something about topic {i}." for i in range(30)]
    text = " ".join(sentences)
    chunks = chunk_text(text, max_chars=200, overlap_chars=60)
    assert all(len(c.text) <= 200 and text[c.start:c.end] == c.text for c in chunks)
    assert all(c.text.startswith("Sentence") and c.text.endswith(".") for c in chunks)  # no sentence cut
    for first, second in zip(chunks, chunks[1:], strict=False):
        assert second.start < first.end  # consecutive chunks share at least one sentence
        assert second.start > first.start
    assert {s for c in chunks for s in sentences if s in c.text} == set(sentences)


def test_long_sentence_is_cut_at_spaces():
    chunks = chunk_text("word " * 100, max_chars=50, overlap_chars=0)
    assert all(len(c.text) <= 50 for c in chunks) and "".join(c.text.replace(" ", "") for c in chunks) == "word" * 100


def test_terms_korean_bigrams():
    assert terms("Python은 str.split()을 쓴다") == ["python", "은", "str", "split", "을", "쓴다"]
    assert terms("서울에서") == ["서울", "울에", "에서"]


def test_bm25_scores_equal_rank_bm25(corpus):
    rank_bm25 = pytest.importorskip("rank_bm25")
    reference, ours = rank_bm25.BM25Okapi(corpus), BM25.fit(corpus)
    for query in QUERIES:
        np.testing.assert_allclose(ours.scores(terms(query)), reference.get_scores(terms(query)), rtol=0, atol=1e-9)
    other = rank_bm25.BM25Okapi(corpus, k1=0.9, b=0.4, epsilon=0.1)
    np.testing.assert_allclose(BM25.fit(corpus, k1=0.9, b=0.4, epsilon=0.1).scores(terms(QUERIES[0])),
                               other.get_scores(terms(QUERIES[0])), rtol=0, atol=1e-9)


def test_bm25_top10_equal_bm25s_lucene(corpus):
    bm25s = pytest.importorskip("bm25s")
    reference = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    reference.index(corpus, show_progress=False)
    ours = BM25.fit(corpus, idf_kind="lucene")
    for query in QUERIES[:-1]:
        ids, scores = reference.retrieve([terms(query)], k=10, show_progress=False)
        mine, my_scores = ours.top_k(terms(query), 10)
        # bm25s leaves out the constant factor (k1 + 1) and computes in float32
        np.testing.assert_allclose(my_scores / 2.5, scores[0], rtol=1e-5)
        assert _tie_groups(mine, my_scores / 2.5) == _tie_groups(ids[0], scores[0]), query


def _tie_groups(ids: np.ndarray, scores: np.ndarray) -> list[set[int]]:
    """The ranking as groups of equal score (exact ties may come in either order); the last group is left
    out because a tie at the cut-off can be broken either way."""
    groups: dict[float, set[int]] = {}
    for i, s in zip(ids.tolist(), np.round(scores.astype(np.float64), 4).tolist(), strict=True):
        groups.setdefault(s, set()).add(i)
    return list(groups.values())[:-1]


def test_rrf():
    fused = reciprocal_rank_fusion([[3, 1, 2], [1, 4]])
    assert [i for i, _ in fused] == [1, 3, 4, 2]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)


def test_index_round_trip_and_errors(tmp_path):
    index = RagIndex.build(read_sources(["encyclopedia-en"]), dense=False, sources=["encyclopedia-en"])
    assert len(index.chunks) == 200
    out = index.save(tmp_path / "index")
    again = RagIndex.load(out)
    question = "In which year was the town of " + index.chunks[7].text.split()[0] + " founded?"
    assert [h.chunk_id for h in again.search(question, 3, "bm25")] == [h.chunk_id for h in index.search(question, 3, "bm25")]
    assert again.search(question, 1, "bm25")[0].chunk_id == 7
    with pytest.raises(UserError, match="no passage vectors"):
        again.search(question, 3, "dense")
    with pytest.raises(UserError, match="already holds an index"):
        index.save(out)
    index.save(out, force=True)
    meta = json.loads((out / "index.json").read_text())
    (out / "index.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(UserError, match="version 99"):
        RagIndex.load(out)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="not an lm2llm index"):
        index.save(tmp_path / "notes", force=True)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"
    with pytest.raises(UserError, match="empty"):
        RagIndex.build([("a", "   ")], dense=False)


def test_dense_and_hybrid_find_a_paraphrase():
    documents = [("a", "The split method breaks a string into a list of words."),
                 ("b", "Files are opened with the open function and closed afterwards."),
                 ("c", "A dictionary maps keys to values.")]
    index = RagIndex.build(documents)
    assert index.embeddings.shape == (3, 384)
    assert np.allclose(np.linalg.norm(index.embeddings, axis=1), 1, atol=1e-5)
    assert index.search("How can I cut text into pieces?", 1, "dense")[0].chunk.origin == "a"
    assert index.search("How do I read a file?", 3, "bm25") == []  # no shared content word
    assert index.search("How do I read a file?", 1, "hybrid")[0].chunk.origin == "b"
    faster = RagIndex.build(documents, bf16=True)  # the full tour's choice: bf16 autocast, the same directions
    assert (faster.embeddings * index.embeddings).sum(1).min() > 0.999
    assert faster.search("How can I cut text into pieces?", 1, "dense")[0].chunk.origin == "a"
