"""Training and measurement text for tokenizers: `lm2llm.data.load_documents` once the data stage exists.

Stopgap until `lm2llm.data` lands: a local UTF-8 file or a folder of `*.txt` files, plus small
stand-ins for two registered corpora (`python-docs`: CPython's pydoc topics; `korean-law`: the Korean
constitution and bills bundled with konlpy), read without network access.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lm2llm.errors import UserError


def _konlpy_law_files() -> list[Path]:
    spec = importlib.util.find_spec("konlpy")  # found without importing konlpy (that starts a JVM bridge)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the korean-law corpus needs the konlpy package", hint="pip install konlpy")
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"
    return [root / "kolaw" / "constitution.txt", *sorted((root / "kobill").glob("*.txt"))]


def _stopgap_documents(source: str) -> list[str]:
    if source == "python-docs":
        import pydoc_data.topics

        return [pydoc_data.topics.topics[key] for key in sorted(pydoc_data.topics.topics)]
    if source == "korean-law":
        return [path.read_text(encoding="utf-8") for path in _konlpy_law_files()]
    path = Path(source)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(path.rglob("*.txt"))
    else:
        raise UserError("unknown source", where=source, hint="python-docs, korean-law, or a text file/folder")
    texts = []
    for file in files:
        try:
            texts.append(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise UserError(f"not UTF-8 text (byte {exc.start})", where=str(file)) from exc
    return texts


def load_texts(source: str, limit: int | None = None) -> list[str]:
    try:
        from lm2llm.data import load_documents
    except ImportError:
        texts = _stopgap_documents(source)
        return texts[:limit] if limit is not None else texts
    return load_documents(source, limit=limit)
