"""`lm2llm rag index|query|eval`: retrieval-augmented generation with citations and a groundedness check."""

from __future__ import annotations

from pathlib import Path

import typer

from lm2llm.cli.output import JSON_OPTION, console, group, print_json, print_table
from lm2llm.errors import UserError

SOURCE_HELP = ("What to index: encyclopedia-en, encyclopedia-ko (the fictional encyclopedia), a registered "
               "corpus (python-docs, korean-law, ...) or a text file, folder or glob; several allowed.")
MODE_HELP = "bm25, dense (MiniLM cosine) or hybrid (reciprocal rank fusion of both, k = 60)."
MODEL_HELP = "The answering model: a registered name or a run directory."


def _mode(value: str) -> str:
    from lm2llm.rag.index import MODES

    if value not in MODES:
        raise UserError(f"unknown mode {value!r}", where="--mode", hint=", ".join(MODES))
    return value


def index_command(
    sources: list[str] = typer.Argument(..., help=SOURCE_HELP),
    out: Path = typer.Option(..., "--out", help="Index directory to write (new, or an earlier index with --force)."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many documents per source."),
    max_chars: int = typer.Option(800, "--max-chars", min=50, help="Longest chunk, in characters."),
    overlap: int = typer.Option(200, "--overlap", min=0, help="Characters of whole sentences shared by neighbours."),
    dense: bool = typer.Option(True, "--dense/--no-dense", help="Also embed every chunk with MiniLM."),
    force: bool = typer.Option(False, "--force", help="Replace an earlier index at --out."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Chunk the sources, build BM25 postings (and MiniLM vectors), and save the index atomically."""
    import time

    from lm2llm.rag.index import RagIndex
    from lm2llm.rag.sources import read_sources

    if overlap >= max_chars:
        raise UserError("--overlap must be smaller than --max-chars", where="--overlap")
    start = time.perf_counter()
    documents = read_sources(sources, limit)
    index = RagIndex.build(documents, dense=dense, max_chars=max_chars, overlap_chars=overlap, sources=sources)
    index.save(out, force=force)
    report = {"index": str(out), "documents": len(documents), "chunks": len(index.chunks),
              "terms": len(index.bm25.vocab), "dense": index.embeddings is not None,
              "seconds": round(time.perf_counter() - start, 2)}
    print_json(report) if json_out else print_table("lm2llm rag index", list(report.items()))


def query_command(
    index_dir: Path = typer.Argument(..., help="An index written by 'lm2llm rag index'."),
    question: str = typer.Argument(..., help="The question."),
    model: str = typer.Option("smollm2-135m-instruct", "--model", help=MODEL_HELP),
    retrieve_only: bool = typer.Option(False, "--retrieve-only", help="Show the passages, answer nothing."),
    k: int = typer.Option(5, "--k", min=1, max=20, help="Passages to retrieve."),
    mode: str = typer.Option("hybrid", "--mode", help=MODE_HELP),
    max_new_tokens: int = typer.Option(96, "--max-new-tokens", min=1, max=1024),
    json_out: bool = JSON_OPTION,
) -> None:
    """Retrieve passages for a question and, with --model, answer it citing them as [1], [2]."""
    from lm2llm.rag.index import RagIndex

    mode = _mode(mode)
    if not question.strip():
        raise UserError("the question is empty", where="QUESTION")
    index = RagIndex.load(index_dir)
    if retrieve_only:
        hits = index.search(question, k, mode)
        report = {"question": question, "passages": [{"number": i, "origin": h.chunk.origin, "score": h.score,
                                                      "text": h.chunk.text} for i, h in enumerate(hits, 1)]}
    else:
        from lm2llm.inference.sampling import SamplingConfig
        from lm2llm.prompting.render import load_generator
        from lm2llm.rag.answer import answer_with_retrieval

        config = SamplingConfig(max_new_tokens=max_new_tokens, temperature=0)
        report = answer_with_retrieval(load_generator(model), index, [question], k=k, mode=mode,
                                       config=config)[0].to_dict()
    if json_out:
        print_json(report)
        return
    if "answer" in report:
        console.print(f"answer: {report['answer']}", markup=False)
        if report["cited_by"] == "post-hoc":
            console.print(f"citations added after the fact (the model wrote none): {report['answer_with_citations']}",
                          markup=False)
        g = report["groundedness"]
        console.print(f"groundedness: faithfulness {g['faithfulness']:.2f}, citation recall "
                      f"{g['citation_recall']:.2f}, precision {g['citation_precision']:.2f}")
        for sentence in g["unsupported_sentences"]:
            console.print(f"[yellow]unsupported:[/yellow] {sentence}")
        for c in report["citations"]:
            console.print(f"[{c['number']}] {c['origin']}: {' '.join(c['text'].split())[:300]}", markup=False)
    else:
        for p in report["passages"]:
            console.print(f"[{p['number']}] {p['origin']} ({p['score']:.3f}): {' '.join(p['text'].split())[:300]}",
                          markup=False)


def eval_command(
    index_dir: Path = typer.Argument(..., help="An index written by 'lm2llm rag index'."),
    task: str = typer.Option(..., "--task", help="encyclopedia-en, encyclopedia-ko, korean-law-qa, stdlib-qa (the "
                             "harness's Python questions), or a JSONL file of {question, answer, gold_origin} records."),
    model: str = typer.Option(None, "--model", help="Also answer closed-book and with RAG (a registered name "
                              "such as smollm2-135m-instruct, or a run directory)."),
    limit: int = typer.Option(None, "--limit", min=1, help="At most this many questions (spread over the set)."),
    k: int = typer.Option(5, "--k", min=1, max=20),
    mode: str = typer.Option("hybrid", "--mode", help=MODE_HELP),
    json_out: bool = JSON_OPTION,
) -> None:
    """Retrieval recall@k and MRR per mode; with --model, accuracy and unsupported sentences with and
    without retrieval, citation recall/precision and the groundedness score's AUROC."""
    from lm2llm.rag.evaluate import evaluate_answers, evaluate_retrieval, load_task
    from lm2llm.rag.index import RagIndex

    mode = _mode(mode)
    index = RagIndex.load(index_dir)
    items = load_task(task, limit)
    report: dict = {"task": task, "n": len(items)}
    report["retrieval"] = evaluate_retrieval(index, items)
    if model is not None:
        from lm2llm.prompting.render import load_generator

        report["answers"] = evaluate_answers(load_generator(model), index, items, k=k, mode=mode)
    if json_out:
        print_json(report)
        return
    for name, scores in report.get("retrieval", {}).items():
        print_table(f"retrieval: {name}", [(key, round(v, 3)) for key, v in scores.items()])
    if "answers" in report:
        a = report["answers"]
        rows = [(f"accuracy {kind}", f"{a['accuracy'][kind]['rate']:.3f} [{a['accuracy'][kind]['low']:.3f}, "
                                     f"{a['accuracy'][kind]['high']:.3f}]") for kind in ("closed_book", "rag")]
        rows += [(f"unsupported sentences {kind}", f"{a['unsupported_sentences'][kind]['rate']:.3f}")
                 for kind in ("closed_book", "rag")]
        rows += [("citation recall (model's marks)", round(a["citation_recall"], 3)),
                 ("citation precision (model's marks)", round(a["citation_precision"], 3)),
                 ("answers the model cited", round(a["answers_with_model_citations"]["rate"], 3)),
                 ("relevant passage cited (model or post hoc)", round(a["relevant_passage_cited"]["rate"], 3)),
                 ("hallucination AUROC (support in retrieved passages)",
                  round(a["hallucination_auroc"]["context_support"], 3))]
        print_table("answers", rows)


def register(app: typer.Typer) -> None:
    rag_app = group("Retrieval-augmented generation: index, query with citations, evaluate.")
    app.add_typer(rag_app, name="rag")
    rag_app.command("index")(index_command)
    rag_app.command("query")(query_command)
    rag_app.command("eval")(eval_command)
