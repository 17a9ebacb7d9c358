"""One registry of corpora: a name → where its documents come from, their language and licence.

`load_documents(name_or_path)` is what every other stage calls: the cleaned, non-empty document texts of a
registered source or of local files (a file, a directory searched recursively, or a glob).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lm2llm.data import embedded
from lm2llm.data.clean import clean_text
from lm2llm.data.download import RemoteFile, fetch
from lm2llm.data.public import PUBLIC
from lm2llm.data.readers import Document, ReadOptions, expand_paths, read_file
from lm2llm.errors import UserError


@dataclass(frozen=True)
class Source:
    name: str
    description: str
    language: str
    licence: str
    kind: str  # "embedded" (ships with Python or a dependency) or "download"
    read: Callable[[ReadOptions], Iterator[Document]]
    files: tuple[RemoteFile, ...] = ()  # what a "download" source fetches


EMBEDDED = [
    Source("python-docs", "CPython's documentation topics (pydoc_data) and standard-library docstrings",
           "en", "PSF-2.0", "embedded", embedded.python_docs),
    Source("python-code", "standard-library source files, one document per module",
           "code", "PSF-2.0", "embedded", embedded.python_code),
    Source("korean-law", "the Korean constitution and 10 National Assembly bills bundled with konlpy",
           "ko", "public domain (Korean Copyright Act art. 7: statutes and bills); shipped in konlpy (GPL-3.0)",
           "embedded", embedded.korean_law),
]


DOWNLOADS = [Source(p.name, p.description, p.language, p.licence, "download", p.read, p.files) for p in PUBLIC]


def registry() -> dict[str, Source]:
    return {source.name: source for source in EMBEDDED + DOWNLOADS}


def list_sources() -> list[Source]:
    return list(registry().values())


def describe(source: str) -> dict:
    """Name, kind, language, licence and description of a registered source or of local files."""
    known = registry().get(source)
    if known is None:
        return {"name": source, "kind": "local", "language": "unknown", "description": "local files",
                "licence": "unknown: check the licence of the files before sharing models trained on them"}
    info = {k: getattr(known, k) for k in ("name", "kind", "language", "licence", "description")}
    if known.files:
        info["files"] = [{"url": f.url, "sha256": f.sha256} for f in known.files]
    return info


def download_source(name: str, trust_unverified: bool = False) -> list[Path]:
    """Fetch the files of a downloadable source into the cache; returns their paths."""
    source = registry().get(name)
    if source is None or not source.files:
        names = ", ".join(s.name for s in DOWNLOADS)
        raise UserError(f"{name!r} is not a downloadable source", hint=f"downloadable: {names}")
    return [fetch(name, f, trust_unverified=trust_unverified) for f in source.files]


def iter_documents(source: str, options: ReadOptions | None = None) -> Iterator[Document]:
    """Raw documents of a registered source or of local files, in a fixed order."""
    options = options or ReadOptions()
    known = registry()
    if source in known:
        yield from known[source].read(options)
        return
    for path in expand_paths(source):
        yield from read_file(path, options)


def load_documents(source: str, *, limit: int | None = None, options: ReadOptions | None = None) -> list[str]:
    """The cleaned, non-empty texts of `source` (a registered name or a local path), at most `limit` of them."""
    texts: list[str] = []
    for document in iter_documents(source, options):
        if limit is not None and len(texts) >= limit:
            break
        text = clean_text(document.text).text
        if text:
            texts.append(text)
    return texts


def first_chars(texts: list[str], chars: int) -> list[str]:
    """The first texts holding at least `chars` characters: equal amounts of text when comparing languages."""
    taken, total = [], 0
    for text in texts:
        if total >= chars:
            break
        taken.append(text)
        total += len(text)
    return taken
