"""`lm2llm rag index|query|eval` end to end, with a small chat model for the answering path."""

from __future__ import annotations

import json

import pytest

from lm2llm.cli import main
from lm2llm.rag.index import RagIndex


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rag") / "index"
    assert main(["rag", "index", "encyclopedia-en", "--out", str(out), "--no-dense"]) == 0
    return out


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    from lm2llm.rag.encyclopedia import articles
    from lm2llm.serve.demo import save_demo_run

    return save_demo_run(tmp_path_factory.mktemp("chat") / "run", [t for _, t in articles("en")], vocab_size=400,
                         n_layer=1, d_model=32, n_head=2, context_length=1024)


def test_query_without_a_model_lists_passages(index_dir, capsys):
    assert main(["rag", "query", str(index_dir), "Who founded the town of Loumolux?", "--mode", "bm25", "--k", "2",
                 "--retrieve-only", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passages"][0]["origin"] == "encyclopedia-en:t000" and len(report["passages"]) == 2


def test_query_with_a_model_returns_citations_and_groundedness(index_dir, chat_run, capsys):
    assert main(["rag", "query", str(index_dir), "Who founded the town of Loumolux?", "--mode", "bm25",
                 "--model", str(chat_run), "--max-new-tokens", "8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"answer", "citations", "passages", "groundedness", "cited_by"}
    assert all(0 <= v <= 1 for k, v in report["groundedness"].items() if k != "unsupported_sentences")


def test_eval_reports_retrieval_and_answers(index_dir, chat_run, capsys):
    assert main(["rag", "eval", str(index_dir), "--task", "encyclopedia-en", "--limit", "3", "--mode", "bm25",
                 "--model", str(chat_run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["retrieval"]["bm25"]["recall@1"] == 1.0
    answers = report["answers"]
    assert answers["n"] == 3 and 0 <= answers["accuracy"]["rag"]["rate"] <= 1


def test_bad_inputs_get_one_line_errors(index_dir, chat_run, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    assert main(["rag", "index", str(empty), "--out", str(tmp_path / "i"), "--no-dense"]) == 2
    assert "empty" in capsys.readouterr().err
    long_question = "Who founded the town of Loumolux? " * 400
    assert main(["rag", "query", str(index_dir), long_question, "--mode", "bm25", "--model", str(chat_run)]) == 2
    assert "context" in capsys.readouterr().err
    meta = json.loads((index_dir / "index.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    for name in ("arrays.safetensors", "chunks.jsonl", "vocab.json"):
        (other / name).write_bytes((index_dir / name).read_bytes())
    (other / "index.json").write_text(json.dumps({**meta, "version": 0}))
    assert main(["rag", "query", str(other), "x", "--retrieve-only"]) == 2
    assert "version 0" in capsys.readouterr().err
    assert main(["rag", "eval", str(index_dir), "--task", "nope.jsonl"]) == 2


def test_serve_with_retrieval_returns_passages_and_citations(index_dir, chat_run):
    import httpx

    from lm2llm.rag.index import RagIndex
    from lm2llm.serve.app import ServedModel, ServerThread, create_app
    from lm2llm.serve.retrieval import Retrieval

    served = ServedModel.from_run(chat_run, max_batch=2)
    app = create_app(served, retrieval=Retrieval(RagIndex.load(index_dir), k=2, mode="bm25"))
    with ServerThread(app) as server:
        body = {"model": served.model_id, "max_tokens": 8,
                "messages": [{"role": "user", "content": "Who founded the town of Loumolux?"}]}
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60).json()
        assert reply["passages"][0]["origin"] == "encyclopedia-en:t000"
        assert "citations" in reply and set(reply["groundedness"]) >= {"faithfulness", "citation_recall"}
        bad = httpx.post(f"{server.url}/v1/chat/completions", timeout=60,
                         json={**body, "messages": [{"role": "assistant", "content": "hi"}]})
        assert bad.status_code == 400 and "last message" in bad.json()["error"]["message"]


def test_rag_chapter_report_from_a_small_model(chat_run, tmp_path):
    """Chapter 7.1's claims and tables from real measurements on 20 towns per language and a small chat model
    (the tour measures all 200 and SmolLM2)."""
    from lm2llm.prompting.render import load_generator
    from lm2llm.rag import encyclopedia
    from lm2llm.rag.evaluate import QAItem, evaluate_answers, evaluate_retrieval
    from lm2llm.tour.chapters import ch07_01_rag as chapter
    from lm2llm.tour.framework import ChapterContext

    retrieval, indexes = {}, {}
    for lang in ("en", "ko"):
        indexes[lang] = RagIndex.build(encyclopedia.articles(lang)[:20])
        items = [QAItem(q.question, q.answer, q.gold_origin) for q in encyclopedia.questions(lang)[:100:10]]
        retrieval[f"encyclopedia-{lang}"] = evaluate_retrieval(indexes[lang], items)
    items = [QAItem(q.question, q.answer, q.gold_origin) for q in encyclopedia.questions("en")[:20:5]]
    answers = evaluate_answers(load_generator(str(chat_run)), indexes["en"], items, k=2, max_new_tokens=6)
    result = chapter.report(ChapterContext(tmp_path, quick=True, lang="en"), retrieval, answers, 0.0, 1)
    assert len(result.claims) == 8 and result.claims[0].holds
    assert all(c.holds in (True, False, None) for c in result.claims)
    assert all(c.chance is not None for c in result.claims if c.interval is not None)
    assert (tmp_path / "retrieval.png").is_file()
