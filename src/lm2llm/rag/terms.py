"""The word tokenisation lexical retrieval uses (BM25, token-overlap groundedness).

Lower-cased runs of letters/digits/underscores (so `__debug__` and `str.split` → `str`, `split` survive as
words), with Hangul runs cut into overlapping character bigrams, as Lucene's CJK analyzer does: Korean
attaches particles to nouns (`서울은`, `서울에서`), so whole words rarely repeat between a question and a
passage, while the bigram `서울` does. A one-syllable Hangul word stays as it is.

`content_terms` also drops a short English stop list (as Lucene's and bm25s's English analyzers do): BM25
indexes those, so "How do I read a file?" is not matched on "how", "do" and "a".
"""

from __future__ import annotations

import regex

_WORD = regex.compile(r"\p{Hangul}+|[^\W\p{Hangul}]+")


def terms(text: str) -> list[str]:
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if len(word) > 1 and "\uac00" <= word[0] <= "\ud7a3":
            out.extend(word[i:i + 2] for i in range(len(word) - 1))
        else:
            out.append(word)
    return out


STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or but is are was were be been being it its this that these "
    "those as has have had do does did not no so than then there their they he she his her we you i which who "
    "whom what when where how why also into about over after before such can could would should may might "
    "will shall".split())


def content_terms(text: str) -> list[str]:
    return [t for t in terms(text) if t not in STOPWORDS]
