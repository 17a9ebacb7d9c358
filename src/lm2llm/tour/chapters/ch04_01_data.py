"""Chapter 4.1, data: what collection and preprocessing do to a real corpus, measured stage by stage.

The tour's default English corpus (python-docs) and the Korean law corpus go through `lm2llm.data.prepare`:
cleaning, exact and MinHash near-deduplication, quality filters, PII scrubbing and a hash split. The chapter
shows the funnel, near-duplicate pairs with their exact Jaccard similarity, the PII found in raw text, and
the scrubber's precision and recall twice: on the hand-made English/Korean set (cases someone thought of,
look-alikes included) and on every string a looser net catches in the real python-docs and korean-law
text, labelled by hand (`data/pii_corpus.py`): there the false positives a corpus really produces
(version numbers and netmasks as IPv4 addresses, a Message-ID as an e-mail address) are counted.
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from lm2llm.data.card import funnel_rows  # noqa: E402
from lm2llm.data.dedup import content_hash, jaccard, shingles  # noqa: E402
from lm2llm.data.pii import PII_TYPES, TypeScore, evaluate_detector  # noqa: E402
from lm2llm.data.pii_corpus import score_candidates  # noqa: E402
from lm2llm.data.prepare import DOCUMENTS_FILE, PrepareConfig, prepare  # noqa: E402
from lm2llm.stats import wilson_interval  # noqa: E402
from lm2llm.tour.framework import (  # noqa: E402
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Sample,
    T,
    Table,
    demonstration,
)

QUICK_LIMIT = 3000  # python-docs documents read in quick mode (of about 8,500)


def _kept_texts(directory) -> dict[str, dict]:
    with open(directory / DOCUMENTS_FILE, encoding="utf-8") as lines:
        return {record["origin"]: record for record in map(json.loads, lines)}


def _funnel_figure(ctx: ChapterContext, funnel: dict):
    stages = list(funnel["stages"].items())[:4]
    fig, ax = plt.subplots(figsize=(6, 2.8))
    names = [name for name, _ in stages][::-1]
    counts = [count for _, count in stages][::-1]
    ax.barh(names, counts, color="#4c72b0")
    for y, count in enumerate(counts):
        ax.text(count, y, f" {count:,} ({count / stages[0][1]:.0%})", va="center", fontsize=8)
    ax.set_xlabel("documents (python-docs)")
    ax.set_xlim(0, stages[0][1] * 1.25)
    return ctx.save_figure(fig, "funnel", T("Documents left after each stage", "단계별로 남은 문서 수"))


def _rate(hits: int, total: int) -> str:
    if not total:
        return "—"
    low, high = wilson_interval(hits, total)
    return f"{hits / total:.2f} [{low:.2f}, {high:.2f}]"


def _total(scores: dict[str, TypeScore]) -> TypeScore:
    return TypeScore(*(sum(getattr(s, field) for s in scores.values())
                       for field in ("true_positives", "false_positives", "false_negatives")))


def _above(interval: tuple[float, float], goal: float) -> bool | None:
    """True when the whole interval lies above `goal`, False when below, None (inconclusive) when it straddles."""
    return True if interval[0] >= goal else False if interval[1] < goal else None


def run(ctx: ChapterContext) -> ChapterResult:
    docs_dir, law_dir = ctx.out_dir / "python-docs", ctx.out_dir / "korean-law"
    docs = prepare(PrepareConfig("python-docs", limit=QUICK_LIMIT if ctx.quick else None), docs_dir, force=True)
    ctx.progress(1, 3)
    law = prepare(PrepareConfig("korean-law"), law_dir, force=True)
    scores = evaluate_detector()
    ctx.progress(2, 3)
    funnel, law_funnel = docs.to_dict()["funnel"], law.to_dict()["funnel"]

    removed = funnel["documents_in"] - funnel["train"] - funnel["val"]
    removed_share = removed / funnel["documents_in"]
    funnel_table = Table(T("Funnel: python-docs", "깔때기: python-docs"), ["stage", "documents", "removed", "why"],
                         funnel_rows(funnel))
    law_table = Table(T("Funnel: korean-law", "깔때기: korean-law"), ["stage", "documents", "removed", "why"],
                      funnel_rows(law_funnel))

    # near-duplicate pairs, with the exact Jaccard similarity next to the MinHash estimate
    kept = _kept_texts(docs_dir)
    samples, exact_similarities = [], []
    for example in docs.near_examples:
        kept_text = kept.get(example["kept"], {}).get("text")
        if kept_text is None:  # the kept twin left at a later stage (quality filter)
            continue
        exact = jaccard(shingles(example["text"]), shingles(kept_text))
        exact_similarities.append(exact)
        samples.append(Sample(
            T(f"Near duplicate: {example['removed']} ≈ {example['kept']} (MinHash {example['estimated_jaccard']:.2f})",
              f"유사 중복: {example['removed']} ≈ {example['kept']} (MinHash {example['estimated_jaccard']:.2f})"),
            f"removed: {example['text'][:160]}\n---\nkept:    {kept_text[:160]}",
        ))

    pii_table = Table(T("PII replaced in raw text", "원문에서 치환한 개인정보"), ["type", "python-docs", "korean-law"],
                      [[kind, docs.pii.get(kind, 0), law.pii.get(kind, 0)] for kind in PII_TYPES])
    real, personal = score_candidates()
    score_table = Table(T("Scrubber on the hand-made en/ko set and on the strings a looser net catches in the real "
                          "corpora (95 % Wilson intervals)",
                          "손으로 만든 영어·한국어 세트와 실제 말뭉치에서 느슨한 그물에 걸린 문자열에 대한 스크러버 성능 "
                          "(95 % Wilson 구간)"),
                        ["set", "type", "precision", "recall", "TP", "FP", "FN"],
                        [[name, kind, _rate(s.true_positives, s.true_positives + s.false_positives),
                          _rate(s.true_positives, s.true_positives + s.false_negatives), s.true_positives,
                          s.false_positives, s.false_negatives]
                         for name, table in (("hand-made", scores), ("real text", real))
                         for kind, s in table.items() if s.true_positives + s.false_positives + s.false_negatives])
    min_precision = min(s.precision for s in scores.values())
    min_recall = min(s.recall for s in scores.values())
    real_total = _total(real)
    recall_interval = wilson_interval(real_total.true_positives, real_total.true_positives + real_total.false_negatives)
    precision_intervals = {kind: wilson_interval(s.true_positives, s.true_positives + s.false_positives)
                           for kind, s in real.items() if s.true_positives + s.false_positives}
    worst = min(precision_intervals, key=lambda kind: real[kind].precision)
    false_positives = {kind: s.false_positives for kind, s in real.items() if s.false_positives}
    law_pii = sum(law.pii.values())

    with open(docs_dir / DOCUMENTS_FILE, encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines]
    hashes = {split: {content_hash(r["text"]) for r in records if r["split"] == split} for split in ("train", "val")}
    overlap = len(hashes["train"] & hashes["val"])
    val_share = funnel["val"] / (funnel["train"] + funnel["val"])

    claims = [
        Claim(T("Raw text needs preprocessing: duplicates and low-quality documents are a measurable share of it.",
                "원시 텍스트는 전처리가 필요하다: 중복과 저품질 문서가 눈에 띄는 비율을 차지한다."),
              T(f"python-docs: {removed:,} of {funnel['documents_in']:,} documents removed ({removed_share:.1%}): "
                f"{funnel['exact_duplicates']} exact, {funnel['near_duplicates']} near duplicates, "
                f"{sum(funnel['filtered'].values())} filtered",
                f"python-docs: 문서 {funnel['documents_in']:,}개 중 {removed:,}개 제거({removed_share:.1%}): "
                f"완전 중복 {funnel['exact_duplicates']}, 유사 중복 {funnel['near_duplicates']}, "
                f"필터 {sum(funnel['filtered'].values())}"),
              removed_share >= 0.01),
        Claim(T("Exact hashing misses near duplicates; MinHash + LSH finds them without comparing every pair.",
                "해시 비교로는 유사 중복을 놓친다; MinHash와 LSH는 모든 쌍을 비교하지 않고 찾아낸다."),
              T(f"{funnel['near_duplicates']} near duplicates beyond {funnel['exact_duplicates']} exact ones; "
                f"exact Jaccard of the shown pairs: {', '.join(f'{s:.2f}' for s in exact_similarities) or 'none'}",
                f"완전 중복 {funnel['exact_duplicates']}개 외에 유사 중복 {funnel['near_duplicates']}개; "
                f"예시 쌍의 실제 자카드 유사도: {', '.join(f'{s:.2f}' for s in exact_similarities) or '없음'}"),
              funnel["near_duplicates"] > 0 and all(s > 0.5 for s in exact_similarities)),
        Claim(T("Real text carries personal information, and rule-based scrubbing finds most of it.",
                "실제 텍스트에는 개인정보가 들어 있고, 규칙 기반 스크러버가 대부분을 찾아낸다."),
              T(f"korean-law raw text: {law_pii} PII matches replaced ({dict(law.pii)}); strings labelled as PII in "
                f"the real corpora: {real_total.true_positives} of {real_total.true_positives + real_total.false_negatives}"
                f" found, recall 95 % [{recall_interval[0]:.2f}, {recall_interval[1]:.2f}] ({personal['found']} point "
                f"at a person); hand-made set: precision ≥ {min_precision:.2f}, recall ≥ {min_recall:.2f} for every "
                "type; holds when the real-text recall interval lies above 0.8",
                f"korean-law 원문: 개인정보 {law_pii}건 치환({dict(law.pii)}); 실제 말뭉치에서 개인정보로 라벨링한 문자열 "
                f"{real_total.true_positives + real_total.false_negatives}개 중 {real_total.true_positives}개 찾음, 재현율 "
                f"95 % [{recall_interval[0]:.2f}, {recall_interval[1]:.2f}] (사람을 가리키는 것 {personal['found']}개); "
                f"손으로 만든 세트: 모든 유형에서 정밀도 ≥ {min_precision:.2f}, 재현율 ≥ {min_recall:.2f}; 실제 텍스트 재현율 "
                "구간이 0.8보다 위여야 성립"),
              _above(recall_interval, 0.8) if law_pii > 0 else False),  # intervals in the text (no chance level)
        Claim(T("Rule-based scrubbing replaces little that is not personal information (precision ≥ 0.8 for every "
                "type on real text).",
                "규칙 기반 스크러버는 개인정보가 아닌 것을 거의 치환하지 않는다 (실제 텍스트에서 모든 유형의 정밀도 ≥ 0.8)."),
              T("real-text precision: " + ", ".join(
                  f"{kind} {real[kind].precision:.2f} [{low:.2f}, {high:.2f}]" for kind, (low, high)
                  in precision_intervals.items()) + f"; false positives {false_positives} (version numbers, netmasks "
                "and an in-addr.arpa name as IPv4, a Message-ID as an e-mail address)",
                "실제 텍스트 정밀도: " + ", ".join(
                  f"{kind} {real[kind].precision:.2f} [{low:.2f}, {high:.2f}]" for kind, (low, high)
                  in precision_intervals.items()) + f"; 오탐 {false_positives} (버전 번호, 넷마스크, in-addr.arpa 이름을 "
                "IPv4로, Message-ID를 이메일로)"),
              _above(precision_intervals[worst], 0.8)),
        demonstration(T("Splitting by content hash keeps every validation document out of training.",
                "내용 해시로 나누면 검증 문서가 학습 데이터에 섞이지 않는다."),
              T(f"{overlap} texts in both splits; {val_share:.1%} of documents in val",
                f"두 분할에 모두 있는 텍스트 {overlap}개; 검증 비율 {val_share:.1%}"),
              overlap == 0 and 0.05 <= val_share <= 0.15),
    ]
    figure = _funnel_figure(ctx, funnel)
    ctx.progress(3, 3)
    summary = T(
        f"Preprocessing kept {funnel['train'] + funnel['val']:,} of {funnel['documents_in']:,} python-docs documents "
        f"and replaced {law_pii} pieces of personal information in the Korean law texts.",
        f"전처리 후 python-docs 문서 {funnel['documents_in']:,}개 중 {funnel['train'] + funnel['val']:,}개가 남았고, "
        f"한국 법령 텍스트에서 개인정보 {law_pii}건을 치환했다.",
    )
    return ChapterResult(
        summary, claims=claims, tables=[funnel_table, law_table, pii_table, score_table], figures=[figure],
        samples=samples[:3],
        metrics={"python_docs": docs.to_dict(), "korean_law": law.to_dict(),
                 "pii_scores": {k: {"precision": s.precision, "recall": s.recall} for k, s in scores.items()},
                 "pii_real_text": {k: {"tp": s.true_positives, "fp": s.false_positives, "fn": s.false_negatives}
                                   for k, s in real.items()}, "pii_real_personal": personal,
                 "split_overlap": overlap},
    )


CHAPTER = Chapter("4.1", T("Data: collection and preprocessing", "데이터: 수집과 전처리"), run)
