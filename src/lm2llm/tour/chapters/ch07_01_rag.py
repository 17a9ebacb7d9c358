"""Chapter 7.1, hallucination and RAG: what a small LLM invents without retrieval, and what retrieval fixes.

Three corpora, each with questions whose answers are known:

- the fictional encyclopedia (`lm2llm.rag.encyclopedia`): 200 invented towns in English and, separately
  invented, in Korean. No model can know these facts, so closed-book answers measure invention, and the
  gold article of every question is known (retrieval recall@k and MRR by document);
- python-docs with the harness's `stdlib-qa` questions (real text; a passage is relevant when it contains
  the answer), and the Korean constitution and bills of `korean-law` with 12 Korean questions whose
  answering sentence is known (`korean-law-qa`).

Retrieval is measured for BM25 (written from scratch, checked against `rank_bm25` in the same run), dense
MiniLM and their reciprocal rank fusion. SmolLM2-135M-Instruct then answers encyclopedia questions
closed-book and with the retrieved passages numbered in its prompt; answers are scored by `answer_match`,
their sentences checked by the groundedness check, and the check's score is tested as a hallucination
detector (AUROC against right/wrong). Whether the model writes the [n] marks it is asked for is measured
too; where it does not, the citations shown are attributed after the fact (`grounding.attribute`).
Quick mode: fewer questions, python-docs (first 3,000 documents) and korean-law by BM25 only.
Full mode embeds the passages in bf16 autocast and answers 80 questions (its time: see `N_ANSWERS`).
"""

from __future__ import annotations

import numpy as np

from lm2llm.prompting.render import load_generator
from lm2llm.rag import encyclopedia
from lm2llm.rag.bm25 import BM25
from lm2llm.rag.evaluate import evaluate_answers, evaluate_retrieval, load_task
from lm2llm.rag.index import RagIndex
from lm2llm.rag.metrics import auroc_interval
from lm2llm.rag.sources import read_sources
from lm2llm.rag.terms import content_terms
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Sample,
    T,
    Table,
    compare_intervals,
)
from lm2llm.tour.plots import plt
from lm2llm.tour.real_llm import BULK_DTYPE

# Full mode's time (idle tour before these two: 185 s wall): embedding python-docs' 9,941 chunks with MiniLM cost
# about 200 CPU s in float32 on one thread, answering 120 questions with and without passages about 100.
# Passages are embedded in bf16 autocast (1.8x faster, cosine to the float32 vectors >= 0.99997; `rag.dense.embed`),
# and 80 questions decide the answer claims as 120 did (RAG 0.55 [0.46, 0.64] against closed-book 0.00
# [0.00, 0.03] at 120, 0.51 [0.40, 0.62] against 0.00 [0.00, 0.05] at 80; the groundedness AUROC 0.73
# [0.63, 0.82], then 0.72 [0.62, 0.82]); the chapter took 224 CPU s after (one thread, busy machine). Batches of 64 rows were measured and not
# kept: with RAG's 280-token prompts prefill dominates, and 64 questions took 49.9 CPU s at batch 64 against
# 44.9 at batch 8 (one thread, bf16; padding to the longest prompt costs more than the wider decode step saves).
N_ANSWERS = 80


def bm25_fidelity(index: RagIndex, questions: list[str]) -> float:
    """Largest |our BM25 − rank_bm25| over every document for the questions (same chunks, same tokens)."""
    import rank_bm25

    tokens = [content_terms(c.text) for c in index.chunks]
    ours, reference = BM25.fit(tokens), rank_bm25.BM25Okapi(tokens)
    return max(float(np.abs(ours.scores(content_terms(q)) - reference.get_scores(content_terms(q))).max())
               for q in questions)


def plot_retrieval(ctx: ChapterContext, retrieval: dict[str, dict]):
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = list(retrieval)
    modes = ["bm25", "dense", "hybrid"]
    width = 0.8 / len(modes)
    for j, mode in enumerate(modes):
        values = [retrieval[n].get(mode, {}).get("recall@5", np.nan) for n in names]
        ax.bar([i + j * width for i in range(len(names))], values, width, label=mode)
    ax.set_xticks([i + width for i in range(len(names))], names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("recall@5")
    ax.legend(fontsize=8)
    return ctx.save_figure(fig, "retrieval", T("Recall@5 by retriever and corpus", "검색기·코퍼스별 recall@5"))


def _interval(rate: dict) -> str:
    return f"{rate['rate']:.2f} [{rate['low']:.2f}, {rate['high']:.2f}] (n={rate['n']})"


def _ci(rate: dict) -> tuple[float, float]:
    return rate["low"], rate["high"]


def above(interval: tuple[float, float], level: float) -> bool | None:
    """True when the 95 % interval lies above `level`, False when below, None (inconclusive) when it spans it."""
    return compare_intervals(interval, (level, level))


def run(ctx: ChapterContext) -> ChapterResult:
    n_retrieval = 60 if ctx.quick else 400
    n_answers = 16 if ctx.quick else N_ANSWERS
    bf16 = not ctx.quick  # full mode embeds its passages in bf16 autocast (see N_ANSWERS)
    retrieval: dict[str, dict] = {}
    indexes = {}
    for lang in ("en", "ko"):
        name = f"encyclopedia-{lang}"
        indexes[lang] = RagIndex.build(encyclopedia.articles(lang), sources=[name], bf16=bf16)
        retrieval[name] = evaluate_retrieval(indexes[lang], load_task(name, n_retrieval))
        ctx.progress(len(retrieval), 5)
    docs = RagIndex.build(read_sources(["python-docs"], limit=3000 if ctx.quick else None), dense=not ctx.quick,
                          sources=["python-docs"], bf16=bf16)
    retrieval["python-docs (stdlib-qa)"] = evaluate_retrieval(docs, load_task("stdlib-qa"))
    law = RagIndex.build(read_sources(["korean-law"]), dense=not ctx.quick, sources=["korean-law"], bf16=bf16)
    retrieval["korean-law (korean-law-qa)"] = evaluate_retrieval(law, load_task("korean-law-qa"))
    ctx.progress(3, 5)
    stdlib_questions = [item.question for item in load_task("stdlib-qa")]
    fidelity = bm25_fidelity(indexes["en"], [q.question for q in encyclopedia.questions("en")[:50]])
    fidelity = max(fidelity, bm25_fidelity(docs, stdlib_questions[:10]))

    answers = evaluate_answers(load_generator(dtype=BULK_DTYPE), indexes["en"], load_task("encyclopedia-en", n_answers), k=3,
                               mode="hybrid", max_new_tokens=40, examples=4)
    ctx.progress(4, 5)
    return report(ctx, retrieval, answers, fidelity, len(docs.chunks))


def report(ctx: ChapterContext, retrieval: dict, answers: dict, fidelity: float, docs_chunks: int) -> ChapterResult:
    """Claims, tables and the figure from the retrieval scores and the closed-book vs RAG answers."""
    chance = encyclopedia.chance_level("en")
    closed, rag = answers["accuracy"]["closed_book"], answers["accuracy"]["rag"]
    unsupported = answers["unsupported_sentences"]
    rows = answers["examples"]["fixed_by_rag"] + answers["examples"]["rag_failed"]
    rights = [r["rag_right"] for r in answers["rows"]]
    scores = [r["context_support"] for r in answers["rows"]]
    auc = answers["hallucination_auroc"]["context_support"]
    auc_low, auc_high = auroc_interval(scores, rights)
    en, ko = retrieval["encyclopedia-en"], retrieval["encyclopedia-ko"]
    claims = [
        Claim(T("Our BM25, written from scratch, scores every passage as rank_bm25 does.",
                "직접 구현한 BM25가 모든 문단에 rank_bm25와 같은 점수를 준다."),
              T(f"largest score difference over all passages and 60 questions: {fidelity:.1e} (tolerance 1e-9)",
                f"모든 문단·질문 60개에서 가장 큰 점수 차: {fidelity:.1e} (허용 1e-9)"),
              fidelity <= 1e-9),
        Claim(T("Without retrieval, a small LLM cannot answer questions about facts it never saw: it stays "
                "near chance.",
                "검색 없이 작은 LLM은 본 적 없는 사실에 관한 질문에 답하지 못하고 우연 수준에 머문다."),
              T(f"closed-book accuracy {_interval(closed)}; chance level {chance:.3f}",
                f"폐쇄형 정확도 {_interval(closed)}; 우연 수준 {chance:.3f}"),
              closed["low"] <= chance, chance=chance, interval=_ci(closed)),
        Claim(T("It answers anyway: most closed-book sentences are not supported by the corpus (hallucination).",
                "그래도 답은 한다: 폐쇄형 답 문장 대부분은 코퍼스가 뒷받침하지 않는다(환각)."),
              T(f"unsupported sentences closed-book {_interval(unsupported['closed_book'])}",
                f"근거 없는 문장 비율(폐쇄형) {_interval(unsupported['closed_book'])}"),
              above(_ci(unsupported["closed_book"]), 0.5)),
        Claim(T("Retrieval-augmented generation raises accuracy on those questions.",
                "검색 증강 생성은 그 질문들의 정확도를 높인다."),
              T(f"accuracy with RAG {_interval(rag)} vs closed-book {_interval(closed)}",
                f"RAG 정확도 {_interval(rag)} 대 폐쇄형 {_interval(closed)}"),
              compare_intervals(_ci(rag), _ci(closed)), chance=chance, interval=_ci(rag)),
        Claim(T("With RAG, fewer answer sentences are unsupported.",
                "RAG를 쓰면 근거 없는 답 문장이 줄어든다."),
              T(f"unsupported: RAG {_interval(unsupported['rag'])} vs closed-book {_interval(unsupported['closed_book'])}",
                f"근거 없음: RAG {_interval(unsupported['rag'])} 대 폐쇄형 {_interval(unsupported['closed_book'])}"),
              compare_intervals(_ci(unsupported["closed_book"]), _ci(unsupported["rag"]))),
        Claim(T("The groundedness score (support of the answer's sentences in the retrieved passages) separates "
                "right from wrong RAG answers better than chance.",
                "근거성 점수(검색한 문단이 답 문장을 뒷받침하는 정도)가 맞는 RAG 답과 틀린 답을 우연보다 잘 가른다."),
              T(f"AUROC {auc:.2f} [{auc_low:.2f}, {auc_high:.2f}] (chance 0.5; {sum(rights)} right, "
                f"{len(rights) - sum(rights)} wrong)",
                f"AUROC {auc:.2f} [{auc_low:.2f}, {auc_high:.2f}] (우연 0.5; 맞음 {sum(rights)}, "
                f"틀림 {len(rights) - sum(rights)})"),
              above((auc_low, auc_high), 0.5), chance=0.5, interval=(auc_low, auc_high)),
        Claim(T("Asked to cite the numbered passages as [1], [2], a 135M model writes the marks in most answers.",
                "번호 붙은 문단을 [1], [2]로 인용하라고 하면 135M 모델이 대부분의 답에 그 표시를 단다."),
              T(f"answers with the model's own citation marks: {_interval(answers['answers_with_model_citations'])}; "
                f"ALCE citation recall {answers['citation_recall']:.2f}, precision {answers['citation_precision']:.2f}",
                f"모델이 직접 인용 표시를 단 답: {_interval(answers['answers_with_model_citations'])}; "
                f"ALCE 인용 재현율 {answers['citation_recall']:.2f}, 정밀도 {answers['citation_precision']:.2f}"),
              above(_ci(answers["answers_with_model_citations"]), 0.5)),
        Claim(T("Hybrid retrieval (RRF) is at least as good as the better of BM25 and dense, in English and Korean.",
                "하이브리드 검색(RRF)은 영어와 한국어 모두에서 BM25와 밀집 검색 중 나은 쪽만큼은 된다."),
              T(f"recall@5 en: bm25 {en['bm25']['recall@5']:.2f}, dense {en['dense']['recall@5']:.2f}, hybrid "
                f"{en['hybrid']['recall@5']:.2f}; ko: bm25 {ko['bm25']['recall@5']:.2f}, dense "
                f"{ko['dense']['recall@5']:.2f}, hybrid {ko['hybrid']['recall@5']:.2f}",
                f"recall@5 영어: bm25 {en['bm25']['recall@5']:.2f}, 밀집 {en['dense']['recall@5']:.2f}, 하이브리드 "
                f"{en['hybrid']['recall@5']:.2f}; 한국어: bm25 {ko['bm25']['recall@5']:.2f}, 밀집 "
                f"{ko['dense']['recall@5']:.2f}, 하이브리드 {ko['hybrid']['recall@5']:.2f}"),
              all(r["hybrid"]["recall@5"] >= max(r["bm25"]["recall@5"], r["dense"]["recall@5"]) for r in (en, ko))),
    ]
    retrieval_table = Table(T("Retrieval: recall@k and MRR", "검색: recall@k와 MRR"),
                            ["corpus", "mode", "recall@1", "recall@5", "recall@10", "MRR", "n"],
                            [[corpus, mode, round(s["recall@1"], 3), round(s["recall@5"], 3), round(s["recall@10"], 3),
                              round(s["mrr"], 3), s["n"]] for corpus, modes in retrieval.items() for mode, s in modes.items()])
    answer_table = Table(T("SmolLM2-135M-Instruct on the fictional encyclopedia (hybrid, k = 3)",
                           "가상 백과사전에서 SmolLM2-135M-Instruct (하이브리드, k = 3)"),
                         ["measure", "closed-book", "RAG"],
                         [["accuracy", _interval(closed), _interval(rag)],
                          ["unsupported sentences", _interval(unsupported["closed_book"]), _interval(unsupported["rag"])],
                          ["prompt tokens", round(answers["prompt_tokens"]["closed_book"]),
                           round(answers["prompt_tokens"]["rag"])],
                          ["citation recall / precision (ALCE, the model's marks)", "",
                           f"{answers['citation_recall']:.2f} / {answers['citation_precision']:.2f}"],
                          ["answers with the model's own marks", "", _interval(answers["answers_with_model_citations"])],
                          ["answers cited post hoc by the check", "", _interval(answers["answers_cited_post_hoc"])],
                          ["gold article cited (model or post hoc)", "", _interval(answers["relevant_passage_cited"])]])
    examples = Table(T("Examples: invented closed-book, fixed by RAG; and where RAG failed",
                       "예: 폐쇄형이 지어내고 RAG가 바로잡은 경우, RAG가 실패한 경우"),
                     ["question", "gold", "closed-book", "RAG", "cited"],
                     [[r["question"], r["gold"], r["closed_book"], r["rag"], ", ".join(r["cited"])] for r in rows])
    summary = T(
        f"SmolLM2-135M-Instruct answers {closed['rate']:.0%} of questions about invented towns closed-book "
        f"(chance {chance:.1%}) and {rag['rate']:.0%} with three retrieved passages; BM25 finds the gold article "
        f"in the top 5 for {en['bm25']['recall@5']:.0%} (English) and {ko['bm25']['recall@5']:.0%} (Korean) of "
        f"questions, MiniLM for {en['dense']['recall@5']:.0%} and {ko['dense']['recall@5']:.0%}.",
        f"SmolLM2-135M-Instruct는 가상 도시에 관한 질문에 폐쇄형으로 {closed['rate']:.0%}(우연 {chance:.1%}), "
        f"검색한 문단 3개와 함께 {rag['rate']:.0%}를 맞힌다. BM25는 정답 문서를 상위 5위 안에 영어 "
        f"{en['bm25']['recall@5']:.0%}, 한국어 {ko['bm25']['recall@5']:.0%} 찾고, MiniLM은 "
        f"{en['dense']['recall@5']:.0%}, {ko['dense']['recall@5']:.0%} 찾는다.")
    samples = [Sample(T("The same question closed-book and with RAG", "같은 질문, 폐쇄형과 RAG"),
                      f"Q: {r['question']}\nRAG: {r['rag']} (cited: {', '.join(r['cited']) or 'none'}, "
                      f"{r['cited_by']})\nclosed-book: {r['closed_book']}") for r in rows[:2]]
    ctx.progress(5, 5)
    answers_meta = {k: v for k, v in answers.items() if k != "rows"}
    return ChapterResult(summary, claims=claims, tables=[retrieval_table, answer_table, examples],
                         figures=[plot_retrieval(ctx, retrieval)], samples=samples,
                         metrics={"retrieval": retrieval, "answers": answers_meta, "chance": chance,
                                  "bm25_max_diff": fidelity, "auroc_interval": [auc_low, auc_high],
                                  "python_docs_chunks": docs_chunks})


CHAPTER = Chapter("7.1", T("Hallucination and RAG", "환각과 RAG"), run)
