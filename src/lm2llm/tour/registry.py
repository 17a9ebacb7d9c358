"""Chapter discovery: every module in `lm2llm.tour.chapters` that defines CHAPTER is a chapter."""

from __future__ import annotations

import importlib
import pkgutil

from lm2llm.errors import UserError
from lm2llm.tour import chapters as chapters_pkg
from lm2llm.tour.framework import Chapter


def all_chapters() -> list[Chapter]:
    found = []
    for info in pkgutil.iter_modules(chapters_pkg.__path__):
        module = importlib.import_module(f"{chapters_pkg.__name__}.{info.name}")
        chapter = getattr(module, "CHAPTER", None)
        if isinstance(chapter, Chapter):
            found.append(chapter)
    return sorted(found, key=lambda c: c.sort_key)


def select(only: list[str] | None) -> list[Chapter]:
    """The chapters to run: all, or those named (plus the chapters they need, which run first)."""
    chapters = all_chapters()
    if not only:
        return chapters
    by_id = {c.id: c for c in chapters}
    unknown = [c for c in only if c not in by_id]
    if unknown:
        raise UserError(
            f"unknown chapter {', '.join(unknown)}", where="--only", hint=f"choose from {', '.join(by_id)}"
        )
    wanted: set[str] = set()

    def add(cid: str) -> None:
        if cid in wanted:
            return
        wanted.add(cid)
        for dep in by_id[cid].needs:
            add(dep)

    for cid in only:
        add(cid)
    return [c for c in chapters if c.id in wanted]
