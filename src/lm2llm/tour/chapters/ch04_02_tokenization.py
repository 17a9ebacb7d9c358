"""Chapter 4.2, tokenization: characters vs byte-level BPE, and what an English-only vocabulary does to Korean.

Pre-training starts by turning text into token ids. We measure how many tokens each tokenizer spends
per character on held-out English (python-docs), then train two BPEs of the same size — one on English
only, one on English plus Korean (korean-law) — and count what each spends on held-out Korean text.
Longer sequences cost more: attention work grows with the square of the length, and priced APIs
charge per token, so both ratios are computed from the measured token counts.

Korean track: is Korean dear because of the vocabulary or because of the language? Each language gets a BPE
of its own (the same size, trained on the same number of characters), and the two are compared per word
(an English word against a Korean eojeol) and per character.
"""

from __future__ import annotations

from lm2llm.data import first_chars, load_documents
from lm2llm.tokenizer import BPETokenizer, CharTokenizer
from lm2llm.tokenizer.stats import fertility
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

QUICK_VOCABS = [512, 1024, 2048, 4096]
FULL_VOCABS = [512, 1024, 2048, 4096, 8192, 16384]
KOREAN_VOCAB = {True: 2048, False: 8192}
ENGLISH_DOCS = {True: 400, False: None}  # quick mode reads fewer python-docs documents
SHOWCASE = "대한민국의 모든 국민은 인간으로서의 존엄과 가치를 가진다."


def _split(texts: list[str], held_out_every: int) -> tuple[list[str], list[str]]:
    """Every n-th document is held out, so fertility is measured on text the tokenizer never saw."""
    train = [t for i, t in enumerate(texts) if i % held_out_every != held_out_every - 1]
    test = [t for i, t in enumerate(texts) if i % held_out_every == held_out_every - 1]
    return train, test


def _own_vocabularies(english: tuple[list[str], list[str]], korean: tuple[list[str], list[str]], vocab: int,
                      english_only_gap: float) -> tuple[Table, Claim, dict]:
    """English and Korean, each with a BPE of its own of the same size trained on as many characters."""
    korean_chars = sum(map(len, korean[0]))
    own = {"en": fertility(BPETokenizer.train(first_chars(english[0], korean_chars), vocab), english[1]).by_language["en"],
           "ko": fertility(BPETokenizer.train(korean[0], vocab), korean[1]).by_language["ko"]}
    gap = own["ko"].tokens_per_word / own["en"].tokens_per_word
    table = Table(
        T(f"Each language with a BPE of its own ({vocab} tokens, {korean_chars:,} training characters each)",
          f"언어마다 자기 BPE (어휘 {vocab}개, 각 학습 글자 {korean_chars:,}자)"),
        ["language", "tokens/word", "tokens/char", "bytes/token"],
        [[name, round(own[lang].tokens_per_word, 3), round(own[lang].tokens_per_char, 3),
          round(own[lang].bytes_per_token, 2)] for lang, name in (("en", "English"), ("ko", "Korean"))],
    )
    claim = Claim(
        T("Most of Korean's extra tokens come from the vocabulary, not the language: with a vocabulary of its own a "
          "Korean word costs far less than with an English one, yet still more than an English word, because an "
          "eojeol carries its particles and endings.",
          "한국어 토큰이 많은 까닭은 대부분 언어가 아니라 어휘에 있다: 자기 어휘를 가진 한국어 어절은 영어 어휘로 "
          "자를 때보다 훨씬 싸지만, 조사와 어미를 달고 있어 여전히 영어 단어보다 토큰이 많다."),
        T(f"Korean ÷ English tokens per word: {english_only_gap:.2f}× with the English-only BPE, {gap:.2f}× when each "
          "language has its own; holds when the own-vocabulary gap is above 1 and under half the English-only one",
          f"한국어 ÷ 영어 어절(단어)당 토큰: 영어 전용 BPE로 {english_only_gap:.2f}배, 언어마다 자기 BPE로 {gap:.2f}배; "
          "자기 어휘의 격차가 1보다 크고 영어 전용 격차의 절반 미만이면 성립"),
        1 < gap < english_only_gap / 2,
    )
    return table, claim, {"own_vocabulary": {lang: f.as_dict() for lang, f in own.items()}, "own_vocabulary_gap": gap}


def _pieces(tokenizer: BPETokenizer, text: str) -> str:
    """Tokens separated by "|"; a token holding part of a character shows its bytes in hex, as ⟨ed 95⟩."""
    shown = []
    for token_id in tokenizer.encode(text):
        raw = tokenizer.token_bytes(token_id)
        try:
            shown.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            shown.append("⟨" + raw.hex(" ") + "⟩")
    return " | ".join(shown)


def run(ctx: ChapterContext) -> ChapterResult:
    english_train, english_test = _split(load_documents("python-docs", limit=ENGLISH_DOCS[ctx.quick]), 10)
    korean_train, korean_test = _split(load_documents("korean-law"), 4)
    steps = len(QUICK_VOCABS if ctx.quick else FULL_VOCABS) + 3
    done = 0

    # 1. Characters vs BPE at several vocabulary sizes, on held-out English.
    chars = CharTokenizer.train(english_train)
    rows = [["char", chars.vocab_size, round(fertility(chars, english_test).overall.tokens_per_char, 3), None]]
    curve = []
    for vocab in QUICK_VOCABS if ctx.quick else FULL_VOCABS:
        bpe = BPETokenizer.train(english_train, vocab)
        stats = fertility(bpe, english_test).overall
        curve.append((vocab, stats.tokens_per_char))
        rows.append([f"BPE {vocab}", bpe.vocab_size, round(stats.tokens_per_char, 3), round(stats.bytes_per_token, 2)])
        done += 1
        ctx.progress(done, steps)
    english_chars = sum(map(len, english_test))
    for row in rows:
        row.append(round(row[2] * english_chars))
    size_table = Table(
        T("Held-out English (python-docs): tokens per character", "학습에 쓰지 않은 영어(python-docs): 문자당 토큰 수"),
        ["tokenizer", "vocab", "tokens/char", "bytes/token", f"tokens for {english_chars:,} chars"],
        rows,
    )

    # 2. The same vocabulary size trained on English only vs English + Korean.
    vocab = KOREAN_VOCAB[ctx.quick]
    english_only = BPETokenizer.train(english_train, vocab)
    done += 1
    ctx.progress(done, steps)
    mixed = BPETokenizer.train(english_train + korean_train, vocab)
    done += 1
    ctx.progress(done, steps)
    ko_en = fertility(english_only, korean_test)
    ko_mix = fertility(mixed, korean_test)
    en_en = fertility(english_only, english_test).overall
    en_mix = fertility(mixed, english_test).overall
    ko_words_en, ko_words_mix = ko_en.by_language["ko"], ko_mix.by_language["ko"]
    english_only_gap = ko_words_en.tokens_per_word / fertility(english_only, english_test).by_language["en"].tokens_per_word
    own_table, own_claim, own_metrics = _own_vocabularies((english_train, english_test), (korean_train, korean_test),
                                                          vocab, english_only_gap)
    length_ratio = ko_en.overall.tokens / ko_mix.overall.tokens
    attention_ratio = length_ratio**2
    context = 1024
    chars_per_context = {name: context / r.overall.tokens_per_char for name, r in (("en", ko_en), ("mix", ko_mix))}
    language_table = Table(
        T(f"BPE with {vocab} tokens: trained on English only vs English + Korean",
          f"어휘 {vocab}개 BPE: 영어만으로 학습 vs 영어+한국어로 학습"),
        ["training text", "Korean tokens/word", "Korean bytes/token", "Korean tokens/char",
         "English tokens/char", f"Korean chars in {context} tokens"],
        [
            ["English only", round(ko_words_en.tokens_per_word, 2), round(ko_words_en.bytes_per_token, 2),
             round(ko_en.overall.tokens_per_char, 3), round(en_en.tokens_per_char, 3), round(chars_per_context["en"])],
            ["English + Korean", round(ko_words_mix.tokens_per_word, 2), round(ko_words_mix.bytes_per_token, 2),
             round(ko_mix.overall.tokens_per_char, 3), round(en_mix.tokens_per_char, 3), round(chars_per_context["mix"])],
        ],
    )

    # Figures.
    fig, ax = plt.subplots(figsize=(5.5, 3))
    ax.plot([v for v, _ in curve], [t for _, t in curve], marker="o", label=T("byte-level BPE", "바이트 수준 BPE").get(ctx.lang))
    ax.axhline(rows[0][2], color="grey", linestyle="--", label=T("characters", "문자 단위").get(ctx.lang))
    ax.set_xscale("log", base=2)
    ax.set_xlabel(T("vocabulary size", "어휘 크기").get(ctx.lang))
    ax.set_ylabel(T("tokens per character", "글자당 토큰").get(ctx.lang))
    ax.legend()
    curve_figure = ctx.save_figure(fig, "tokens_per_char", T("Bigger vocabularies, shorter sequences",
                                                             "어휘가 클수록 시퀀스가 짧아진다"))
    fig, ax = plt.subplots(figsize=(5.5, 3))
    labels = ["Korean / 한국어", "English / 영어"]
    width = 0.38
    ax.bar([0 - width / 2, 1 - width / 2], [ko_en.overall.tokens_per_char, en_en.tokens_per_char], width,
           label=T("English-only BPE", "영어 전용 BPE").get(ctx.lang))
    ax.bar([0 + width / 2, 1 + width / 2], [ko_mix.overall.tokens_per_char, en_mix.tokens_per_char], width,
           label=T("English+Korean BPE", "영어+한국어 BPE").get(ctx.lang))
    ax.set_xticks([0, 1], labels)
    ax.set_ylabel(T("tokens per character", "글자당 토큰").get(ctx.lang))
    ax.legend()
    language_figure = ctx.save_figure(fig, "korean_fertility", T("What an English-only vocabulary does to Korean",
                                                                 "영어 전용 어휘가 한국어에 미치는 영향"))
    done += 1
    ctx.progress(done, steps)

    tokens_per_char = [t for _, t in curve]
    shrinking = all(a > b for a, b in zip(tokens_per_char, tokens_per_char[1:], strict=False))
    claims = [
        Claim(
            T("Subword (BPE) tokens make sequences shorter than characters, more so as the vocabulary grows.",
              "서브워드(BPE) 토큰은 문자보다 시퀀스를 짧게 만들고, 어휘가 클수록 더 짧아진다."),
            T(f"tokens per character: characters {rows[0][2]}, BPE "
              + ", ".join(f"{v}: {t:.3f}" for v, t in curve),
              f"문자당 토큰: 문자 {rows[0][2]}, BPE " + ", ".join(f"{v}: {t:.3f}" for v, t in curve)),
            shrinking and tokens_per_char[0] < rows[0][2],
        ),
        Claim(
            T("A tokenizer trained on English splits Korean into many more tokens than one that saw Korean.",
              "영어로만 학습한 토크나이저는 한국어를 본 토크나이저보다 한국어를 훨씬 많은 토큰으로 쪼갠다."),
            T(f"Korean tokens per word {ko_words_en.tokens_per_word:.2f} vs {ko_words_mix.tokens_per_word:.2f} "
              f"({ko_words_en.tokens_per_word / ko_words_mix.tokens_per_word:.2f}×); "
              f"bytes per token {ko_words_en.bytes_per_token:.2f} vs {ko_words_mix.bytes_per_token:.2f}",
              f"한국어 어절당 토큰 {ko_words_en.tokens_per_word:.2f} 대 {ko_words_mix.tokens_per_word:.2f} "
              f"({ko_words_en.tokens_per_word / ko_words_mix.tokens_per_word:.2f}배); "
              f"토큰당 바이트 {ko_words_en.bytes_per_token:.2f} 대 {ko_words_mix.bytes_per_token:.2f}"),
            ko_words_en.tokens_per_word >= 1.5 * ko_words_mix.tokens_per_word,
        ),
        demonstration(
            T("So the same Korean text costs more with an English-only tokenizer: a longer sequence, more "
              "attention work, more per-token price, and less text in the context window.",
              "그래서 같은 한국어 글이 영어 전용 토크나이저로는 더 비싸다: 시퀀스가 길고, 어텐션 계산과 토큰당 "
              "요금이 늘고, 컨텍스트 창에 담기는 글이 줄어든다."),
            T(f"{length_ratio:.2f}× the tokens (price), {attention_ratio:.2f}× the attention work (length²), "
              f"{chars_per_context['en']:.0f} vs {chars_per_context['mix']:.0f} Korean characters per {context} tokens",
              f"토큰 {length_ratio:.2f}배(요금), 어텐션 계산 {attention_ratio:.2f}배(길이²), "
              f"{context}토큰에 한국어 {chars_per_context['en']:.0f}자 대 {chars_per_context['mix']:.0f}자"),
            length_ratio > 1.0,
        ),
        Claim(
            T("Sharing a fixed vocabulary with Korean costs English some compression (the trade-off "
              "multilingual tokenizers make).",
              "고정된 어휘를 한국어와 나누면 영어 압축률이 조금 나빠진다(다국어 토크나이저의 절충)."),
            T(f"English tokens per character {en_en.tokens_per_char:.3f} (English only) vs "
              f"{en_mix.tokens_per_char:.3f} (mixed)",
              f"영어 문자당 토큰 {en_en.tokens_per_char:.3f}(영어 전용) 대 {en_mix.tokens_per_char:.3f}(혼합)"),
            en_mix.tokens_per_char > en_en.tokens_per_char,
        ),
        own_claim,
    ]
    samples = [
        Sample(T("English-only BPE on a Korean sentence (⟨hex⟩ = bytes of part of a character)",
                 "영어 전용 BPE로 자른 한국어 문장 (⟨hex⟩ = 글자 일부의 바이트)"), _pieces(english_only, SHOWCASE)),
        Sample(T("English + Korean BPE on the same sentence", "영어+한국어 BPE로 자른 같은 문장"),
               _pieces(mixed, SHOWCASE)),
    ]
    summary = T(
        f"BPE with {curve[-1][0]} tokens spends {curve[-1][1]:.2f} tokens per English character (characters: "
        f"{rows[0][2]}); an English-only BPE needs {length_ratio:.2f}× the tokens for Korean text.",
        f"어휘 {curve[-1][0]}개 BPE는 영어 문자당 {curve[-1][1]:.2f}토큰(문자 단위: {rows[0][2]}); 영어 전용 BPE는 "
        f"한국어 글에 토큰이 {length_ratio:.2f}배 필요하다.",
    )
    metrics = {
        "english_test_chars": english_chars,
        "bpe_tokens_per_char": dict(curve),
        "char_tokens_per_char": rows[0][2],
        "korean": {"english_only": ko_en.as_dict(), "mixed": ko_mix.as_dict(), "vocab_size": vocab},
        "english": {"english_only": en_en.as_dict(), "mixed": en_mix.as_dict()},
        "korean_length_ratio": length_ratio,
        "korean_attention_ratio": attention_ratio,
        **own_metrics,
    }
    return ChapterResult(summary, claims=claims, tables=[size_table, language_table, own_table],
                         figures=[curve_figure, language_figure], samples=samples, metrics=metrics)


CHAPTER = Chapter("4.2", T("Tokenization", "토큰화"), run)
