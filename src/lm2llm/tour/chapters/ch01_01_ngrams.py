"""Chapter 1.1, language models and n-grams: P(w_n | w_1 .. w_{n-1}) from counts, and where counts fail.

Measured on python-docs: held-out perplexity against order for MLE, add-one and modified Kneser-Ney
(equal to KenLM's lmplz); the share of held-out n-grams never seen in training (sparsity); the share of
zero-probability events without smoothing; samples at orders 1-5; and a constructed probe whose answer
depends on a word further back than N-1 positions.

Korean track: the same counting on korean-law (the Korean constitution and bills) beside as many characters
of python-docs. Word perplexities of two languages are not comparable (a Korean eojeol carries its particles
and endings), so the languages are compared by unseen words and by a character n-gram's bits per character
and per UTF-8 byte.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np

from lm2llm.data import first_chars, load_documents
from lm2llm.ngram import NgramConfig, generate, sentence_scores, train, write_arpa
from lm2llm.ngram.limits import character_cost, long_range_probe, perplexity_by_order, unseen_shares
from lm2llm.ngram.vocab import split_words
from lm2llm.quiet import native_stderr_silenced
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Sample,
    T,
    Table,
    demonstration,
)
from lm2llm.tour.plots import plt

ORDERS = [1, 2, 3, 4, 5]
DOCS = {True: 1200, False: None}  # quick mode reads fewer python-docs documents
ESTIMATORS = ("mle", "add-k", "kneser-ney")
PROBE_GAP = 3  # the closing word depends on a word 4 positions back: orders >= 5 can see it
CHAR_ORDER = 5  # the character n-gram that compares English and Korean


def document_lines(docs: list[str], held_out_every: int) -> tuple[list[str], list[str]]:
    """Non-empty lines, split by document: every n-th document is held out."""
    lines = [[line.strip() for line in doc.splitlines() if line.strip()] for doc in docs]
    train_lines = [line for i, doc in enumerate(lines) if i % held_out_every for line in doc]
    test_lines = [line for i, doc in enumerate(lines) if not i % held_out_every for line in doc]
    return train_lines, test_lines


def corpus(quick: bool) -> tuple[list[str], list[str]]:
    """Lines of python-docs, split by document: 9 in 10 documents train, the rest are held out."""
    return document_lines(load_documents("python-docs", limit=DOCS[quick]), 10)


def korean_track(english_train: list[str], english_test: list[str]) -> tuple[Table, list[Claim], dict]:
    """korean-law beside the same number of python-docs characters: unseen words, and a character n-gram's
    bits per character and per byte (the units in which two languages can be compared)."""
    korean_train, korean_test = document_lines(load_documents("korean-law"), 4)
    pairs = {"English (python-docs)": (first_chars(english_train, sum(map(len, korean_train))),
                                       first_chars(english_test, sum(map(len, korean_test)))),
             "Korean (korean-law)": (korean_train, korean_test)}
    unseen = {name: unseen_shares(tr, te, 1, kind="words")[0] for name, (tr, te) in pairs.items()}
    cost = {name: character_cost(tr, te, CHAR_ORDER) for name, (tr, te) in pairs.items()}
    en, ko = pairs  # the two names, in order
    table = Table(
        T(f"English vs Korean on the same number of training characters (character {CHAR_ORDER}-gram)",
          f"같은 학습 글자 수에서 영어 대 한국어 (문자 {CHAR_ORDER}-gram)"),
        ["corpus", "training chars", "held-out chars", "unseen words", "bits/char", "bits/UTF-8 byte", "unseen chars"],
        [[name, sum(map(len, tr)), sum(map(len, te)), f"{unseen[name]:.1%}", round(cost[name].bits_per_char, 3),
          round(cost[name].bits_per_byte, 3), f"{cost[name].unseen_char_share:.2%}"] for name, (tr, te) in pairs.items()],
    )
    claims = [
        Claim(
            T("Counted by words, Korean is sparser than English: a Korean word (eojeol) carries its particles and "
              "endings, so more held-out words were never seen in the same amount of training text.",
              "단어 단위로 세면 한국어가 영어보다 희소하다: 한국어 어절은 조사와 어미를 붙이고 있어, 같은 양의 학습 "
              "글에서 처음 보는 검증 단어가 더 많다."),
            T(f"unseen held-out words: Korean {unseen[ko]:.1%} vs English {unseen[en]:.1%} "
              f"({sum(map(len, pairs[ko][0])):,} training characters each)",
              f"처음 보는 검증 단어: 한국어 {unseen[ko]:.1%} 대 영어 {unseen[en]:.1%} "
              f"(각 학습 글자 {sum(map(len, pairs[ko][0])):,}자)"),
            unseen[ko] > unseen[en],
        ),
        Claim(
            T("A Hangul syllable packs what English spells in several letters: per character Korean costs the "
              "n-gram more bits, per UTF-8 byte (3 for a syllable) fewer — the unit decides which language looks harder.",
              "한글 음절 하나에는 영어가 여러 글자로 쓰는 정보가 담긴다: 글자당으로는 한국어가 더 많은 비트, "
              "UTF-8 바이트당(음절은 3바이트)으로는 더 적은 비트가 든다 — 어떤 단위로 재느냐가 결론을 바꾼다."),
            T(f"character {CHAR_ORDER}-gram, held out: Korean {cost[ko].bits_per_char:.2f} vs English "
              f"{cost[en].bits_per_char:.2f} bits/char; {cost[ko].bits_per_byte:.2f} vs {cost[en].bits_per_byte:.2f} "
              "bits/byte; holds when Korean is higher per character and lower per byte",
              f"문자 {CHAR_ORDER}-gram, 검증: 한국어 {cost[ko].bits_per_char:.2f} 대 영어 {cost[en].bits_per_char:.2f} "
              f"비트/글자; {cost[ko].bits_per_byte:.2f} 대 {cost[en].bits_per_byte:.2f} 비트/바이트; 한국어가 글자당 "
              "높고 바이트당 낮으면 성립"),
            cost[ko].bits_per_char > cost[en].bits_per_char and cost[ko].bits_per_byte < cost[en].bits_per_byte,
        ),
    ]
    metrics = {name: {"unseen_words": unseen[name], **vars(cost[name])} for name in pairs}
    return table, claims, metrics


def kenlm_agreement(train_lines: list[str], test_lines: list[str]) -> float | None:
    """Largest |our log10 P(sentence) - KenLM's| for a 3-gram Kneser-Ney model, or None without kenlm."""
    try:
        import kenlm
    except ImportError:
        return None
    model = train(train_lines, NgramConfig(order=3, tokenize="words"))
    sample = [" ".join(split_words(line)) for line in test_lines[:300]]  # KenLM splits on spaces only
    with tempfile.TemporaryDirectory() as tmp:
        write_arpa(model.lm, Path(tmp) / "m.arpa")
        quiet = kenlm.Config()
        quiet.show_progress = False
        with native_stderr_silenced():  # KenLM's "Loading the LM will be faster..." (shown with --verbose)
            reference = kenlm.Model(str(Path(tmp) / "m.arpa"), quiet)
        theirs = np.array([reference.score(line, bos=True, eos=True) for line in sample])
    ours = sentence_scores(model, sample)
    return float(np.abs(ours - theirs).max())


def run(ctx: ChapterContext) -> ChapterResult:
    train_lines, test_lines = corpus(ctx.quick)
    ctx.progress(1, 5)
    sweep = perplexity_by_order(train_lines, test_lines, ORDERS, ESTIMATORS, kind="words")
    ctx.progress(2, 5)
    unseen = unseen_shares(train_lines, test_lines, max(ORDERS), kind="words")
    probe = long_range_probe([2, 3, 4, 5, 6], gap=PROBE_GAP)
    ctx.progress(3, 5)
    samples = []
    for order in ORDERS:
        model = train(train_lines, NgramConfig(order=order, tokenize="words"))
        text = " / ".join("The " + generate(model, "The", max_words=20, seed=10 * order + i) for i in range(2))
        samples.append(Sample(T(f"Kneser-Ney, order {order}", f"Kneser-Ney, 차수 {order}"), text))
    drift = kenlm_agreement(train_lines, test_lines)
    korean_table, korean_claims, korean_metrics = korean_track(train_lines, test_lines)
    ctx.progress(4, 5)

    def fmt(x: float) -> str:
        return "∞" if math.isinf(x) else f"{x:,.1f}"

    table = Table(
        T("Held-out perplexity by order (python-docs words)", "차수별 검증 퍼플렉서티 (python-docs 단어)"),
        ["order", "MLE", "MLE zero-prob share", "add-one", "Kneser-Ney", "unseen n-grams"],
        [[n, fmt(sweep.perplexity["mle"][i]), f"{sweep.zero_share['mle'][i]:.1%}", fmt(sweep.perplexity["add-k"][i]),
          fmt(sweep.perplexity["kneser-ney"][i]), f"{unseen[i]:.1%}"] for i, n in enumerate(ORDERS)],
    )
    probe_table = Table(
        T(f"Long-range probe: the last word depends on the word {PROBE_GAP + 1} positions back",
          f"장거리 의존 탐침: 마지막 단어가 {PROBE_GAP + 1}칸 앞 단어에 달려 있음"),
        ["order", "context words", "accuracy"],
        [[n, n - 1, f"{acc:.0%}"] for n, acc in probe.items()],
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    for estimator, label in (("add-k", "add-one"), ("kneser-ney", "Kneser-Ney")):
        left.plot(ORDERS, sweep.perplexity[estimator], marker="o", label=label)
    left.set_yscale("log")
    left.set_xlabel(T("order N", "차수 N").get(ctx.lang))
    left.set_ylabel(T("held-out perplexity", "검증 퍼플렉서티").get(ctx.lang))
    left.legend()
    right.plot(ORDERS, sweep.zero_share["mle"], marker="o", color="#c44e52", label="MLE")
    right.plot(ORDERS, sweep.zero_share["kneser-ney"], marker="o", color="#55a868", label=T("smoothed", "스무딩").get(ctx.lang))
    right.set_xlabel(T("order N", "차수 N").get(ctx.lang))
    right.set_ylabel(T("share of held-out words with p = 0", "p = 0인 검증 단어 비율").get(ctx.lang))
    right.legend()
    perplexity_figure = ctx.save_figure(fig, "perplexity_by_order", T("Perplexity and zero probabilities by order",
                                                                         "차수별 퍼플렉서티와 확률 0 비율"))
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([str(n) for n in ORDERS], [100 * s for s in unseen], color="#4c72b0")
    ax.set_xlabel(T("order N", "차수 N").get(ctx.lang))
    ax.set_ylabel(T("% of held-out n-grams unseen in training", "학습에서 못 본 검증 n-gram %").get(ctx.lang))
    sparsity_figure = ctx.save_figure(fig, "sparsity", T("Sparsity: unseen n-grams by order", "희소성: 차수별 처음 보는 n-gram"))

    kn = sweep.perplexity["kneser-ney"]
    best = int(np.argmin(kn))
    gain_first = kn[0] / kn[1]
    gain_last = kn[-2] / kn[-1]
    blind = [acc for n, acc in probe.items() if n < PROBE_GAP + 2]
    seeing = [acc for n, acc in probe.items() if n >= PROBE_GAP + 2]
    mle_zero = sweep.zero_share["mle"]
    claims = [
        Claim(
            T("A language model predicts the next word from the words before it; more context predicts better.",
              "언어 모델은 앞 단어들로 다음 단어를 예측하며, 문맥이 길수록 더 잘 예측한다."),
            T(f"Kneser-Ney perplexity {kn[0]:,.0f} (unigram) → {kn[1]:,.0f} (bigram) → {kn[2]:,.0f} (trigram)",
              f"Kneser-Ney 퍼플렉서티 {kn[0]:,.0f}(유니그램) → {kn[1]:,.0f}(바이그램) → {kn[2]:,.0f}(트라이그램)"),
            kn[2] < kn[1] < kn[0],
        ),
        Claim(
            T("Raising the order helps less and less: the gains stall (the last step gains under a tenth of the first).",
              "차수를 올릴수록 이득이 줄어들어 정체한다 (마지막 단계의 이득이 첫 단계의 10분의 1 미만)."),
            T(f"order 1→2 divides perplexity by {gain_first:.2f}, order {ORDERS[-2]}→{ORDERS[-1]} by {gain_last:.3f}; "
              f"best order {ORDERS[best]}",
              f"차수 1→2는 퍼플렉서티를 {gain_first:.2f}배 줄이고 차수 {ORDERS[-2]}→{ORDERS[-1]}에서는 {gain_last:.3f}배; "
              f"최적 차수 {ORDERS[best]}"),
            gain_last - 1 < 0.1 * (gain_first - 1),
        ),
        Claim(
            T("Sparsity: the longer the n-gram, the more of the held-out ones were never seen in training.",
              "희소성: n-gram이 길수록 검증 데이터의 n-gram 중 학습에서 본 적 없는 비율이 커진다."),
            T(f"unseen share {', '.join(f'{s:.0%}' for s in unseen)} for orders {ORDERS[0]}-{ORDERS[-1]}",
              f"차수 {ORDERS[0]}-{ORDERS[-1]}의 미관측 비율 {', '.join(f'{s:.0%}' for s in unseen)}"),
            all(a < b for a, b in zip(unseen, unseen[1:], strict=False)) and unseen[-1] > 0.5,
        ),
        demonstration(
            T("Without smoothing, unseen events get probability zero; smoothing removes every zero.",
              "스무딩이 없으면 처음 보는 사건의 확률이 0이 되고, 스무딩은 0을 모두 없앤다."),
            T(f"MLE gives p = 0 to {mle_zero[1]:.0%} (bigram) and {mle_zero[-1]:.0%} (order {ORDERS[-1]}) of held-out words; "
              f"add-one and Kneser-Ney to {max(sweep.zero_share['add-k'] + sweep.zero_share['kneser-ney']):.0%}",
              f"MLE는 검증 단어의 {mle_zero[1]:.0%}(바이그램), {mle_zero[-1]:.0%}(차수 {ORDERS[-1]})에 확률 0을 주고 "
              f"add-one과 Kneser-Ney는 {max(sweep.zero_share['add-k'] + sweep.zero_share['kneser-ney']):.0%}"),
            mle_zero[1] > 0 and max(sweep.zero_share["add-k"] + sweep.zero_share["kneser-ney"]) == 0,
        ),
        Claim(
            T("An n-gram's context is fixed: a dependency further back than N-1 words is invisible to it.",
              "n-gram의 문맥은 고정되어 있어 N-1 단어보다 먼 의존 관계는 보이지 않는다."),
            T(f"choosing the closing word: {max(blind):.0%} at best with orders < {PROBE_GAP + 2} (chance is 50%), "
              f"{min(seeing):.0%} at least with orders ≥ {PROBE_GAP + 2}",
              f"닫는 단어 맞히기: 차수 {PROBE_GAP + 2} 미만은 최고 {max(blind):.0%}(우연 수준 50%), "
              f"{PROBE_GAP + 2} 이상은 최저 {min(seeing):.0%}"),
            max(blind) < 0.65 and min(seeing) > 0.95,
        ),
    ]
    if drift is not None:
        claims.append(Claim(
            T("Our Kneser-Ney model is the one KenLM scores: KenLM loads our ARPA file and gives the same sentence scores.",
              "우리 Kneser-Ney 모델은 KenLM과 같다: KenLM이 우리 ARPA 파일을 읽어 같은 문장 점수를 낸다."),
            T(f"largest |log10 P| difference over 300 held-out sentences: {drift:.1e}",
              f"검증 문장 300개에서 log10 P 차이의 최댓값: {drift:.1e}"),
            drift < 1e-4,
        ))
    claims += korean_claims
    ctx.progress(5, 5)
    summary = T(
        f"{len(train_lines):,} training lines; Kneser-Ney perplexity falls from {kn[0]:,.0f} to {min(kn):,.0f} and stalls, "
        f"while {unseen[-1]:.0%} of held-out {ORDERS[-1]}-grams were never seen.",
        f"학습 {len(train_lines):,}줄; Kneser-Ney 퍼플렉서티는 {kn[0]:,.0f}에서 {min(kn):,.0f}로 내려가 정체하고, "
        f"검증 {ORDERS[-1]}-gram의 {unseen[-1]:.0%}는 처음 보는 것이다.",
    )
    return ChapterResult(
        summary, claims=claims, tables=[table, probe_table, korean_table], figures=[perplexity_figure, sparsity_figure], samples=samples,
        metrics={"orders": ORDERS, "perplexity": sweep.perplexity, "zero_share": sweep.zero_share, "unseen_share": unseen,
                 "long_range_probe": probe, "kenlm_max_abs_diff": drift, "train_lines": len(train_lines),
                 "korean_track": korean_metrics},
    )


CHAPTER = Chapter("1.1", T("Language models and n-grams", "언어 모델과 n-gram"), run)
