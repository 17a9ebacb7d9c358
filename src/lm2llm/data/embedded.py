"""Corpora that ship with the Python installation itself, so the tour never needs a download.

- `python-docs`: English prose: CPython's documentation topics (`pydoc_data.topics`, the text behind
  `help('with')`) plus every docstring of the standard library, read with `ast` (no module is imported,
  test packages are left out). Extraction parses ~600 files, so the result is cached per Python version.
- `python-code`: the standard library's source files, one document per file.
- `korean-law`: the Korean constitution and ten National Assembly bills bundled as data files in the
  `konlpy` package. The files are read directly from the package directory: importing konlpy would load
  its Java bridge, which the text does not need.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import platform
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from lm2llm.data.readers import Document, ReadOptions, decode_utf8
from lm2llm.env import cache_dir
from lm2llm.errors import UserError
from lm2llm.runs import atomic_write_json

EXCLUDED_DIRS = {"test", "tests", "idle_test", "__phello__", "site-packages", "dist-packages", "__pycache__"}


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files() -> list[Path]:
    """The standard library's .py files, test packages and installed third-party packages excluded, sorted."""
    root = stdlib_dir()
    files = []
    for folder, subdirs, names in os.walk(root):
        # prune in place so os.walk never descends into site-packages or test folders
        subdirs[:] = [d for d in subdirs if d not in EXCLUDED_DIRS and not d.startswith("config-")]
        files += [Path(folder) / n for n in names if n.endswith(".py") and not n.startswith("test_")]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def module_name(path: Path) -> str:
    parts = list(path.relative_to(stdlib_dir()).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def docstrings(tree: ast.Module, module: str) -> Iterator[Document]:
    """Module, class and function docstrings in source order, each with its qualified name."""

    def walk(node: ast.AST, qualname: str) -> Iterator[Document]:
        doc = ast.get_docstring(node, clean=True)  # type: ignore[arg-type]
        if doc:
            yield Document(doc, qualname)
        for child in node.body:  # type: ignore[attr-defined]
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from walk(child, f"{qualname}.{child.name}")

    yield from walk(tree, module)


def _extract_python_docs() -> Iterator[tuple[str, str]]:
    import pydoc_data.topics

    for key in sorted(pydoc_data.topics.topics):
        yield f"pydoc_data.topics:{key}", pydoc_data.topics.topics[key]
    for path in stdlib_files():
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):  # a few template files in the stdlib are not valid Python
            continue
        for doc in docstrings(tree, module_name(path)):
            yield doc.origin, doc.text


def python_docs_cache() -> Path:
    version = f"{platform.python_implementation().lower()}-{platform.python_version()}"
    return cache_dir() / "corpora" / f"python-docs-{version}.json"


_python_docs_memo: list[tuple[str, str]] = []  # filled once per process by a complete pass


def _cached_python_docs() -> list[tuple[str, str]]:
    if not _python_docs_memo and python_docs_cache().is_file():
        try:
            records = json.loads(python_docs_cache().read_text(encoding="utf-8"))
            _python_docs_memo.extend((origin, text) for origin, text in records)
        except (ValueError, TypeError):
            _python_docs_memo.clear()  # a damaged cache is rebuilt by the next complete pass
    return _python_docs_memo


def python_docs(options: ReadOptions) -> Iterator[Document]:
    """Streams while extracting (a `limit` stops early); a complete pass is cached for the next call."""
    records = _cached_python_docs()
    if records:
        yield from (Document(text, origin) for origin, text in records)
        return
    collected = []
    for origin, text in _extract_python_docs():
        collected.append((origin, text))
        yield Document(text, origin)
    atomic_write_json(python_docs_cache(), collected)
    _python_docs_memo.extend(collected)


def python_code(options: ReadOptions) -> Iterator[Document]:
    for path in stdlib_files():
        options.counts["files"] += 1
        yield Document(decode_utf8(path.read_bytes(), str(path), options), module_name(path))


def konlpy_corpus_dir() -> Path:
    """konlpy's bundled corpus folder, found without importing konlpy (which would start its JVM bridge)."""
    spec = importlib.util.find_spec("konlpy")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the korean-law corpus needs the konlpy package", hint="pip install konlpy")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"


def korean_law(options: ReadOptions) -> Iterator[Document]:
    root = konlpy_corpus_dir()
    paths = [root / "kolaw" / "constitution.txt", *sorted((root / "kobill").glob("*.txt"))]
    for path in paths:
        if not path.is_file():
            raise UserError("konlpy's bundled corpus file is missing", where=str(path),
                            hint="reinstall konlpy")
        options.counts["files"] += 1
        yield Document(decode_utf8(path.read_bytes(), str(path), options), f"konlpy/{path.parent.name}/{path.name}")
