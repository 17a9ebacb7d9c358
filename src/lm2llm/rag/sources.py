"""What `lm2llm rag index SOURCE...` reads: the fictional encyclopedia, a registered corpus, or local files."""

from __future__ import annotations

from collections.abc import Sequence

from lm2llm.rag import encyclopedia


def read_sources(sources: Sequence[str], limit: int | None = None) -> list[tuple[str, str]]:
    """(origin, cleaned text) documents of every source, at most `limit` per source, in a fixed order.

    `encyclopedia-en` / `encyclopedia-ko` are the synthetic articles; any other name goes through
    `lm2llm.data.sources` (python-docs, korean-law, ... or a file, folder or glob).
    """
    from lm2llm.data.clean import clean_text
    from lm2llm.data.sources import iter_documents

    documents: list[tuple[str, str]] = []
    for source in sources:
        if source in encyclopedia.SOURCES:
            documents.extend(encyclopedia.articles(encyclopedia.SOURCES[source])[:limit])
            continue
        taken = 0
        for document in iter_documents(source):
            text = clean_text(document.text).text.strip()
            if text:
                documents.append((document.origin, text))
                taken += 1
                if limit is not None and taken >= limit:
                    break
    return documents
