"""The tour: one chapter per section of the guide, each measured, collected into one report."""

from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Figure,
    Sample,
    T,
    Table,
    Text,
)

__all__ = ["Chapter", "ChapterContext", "ChapterResult", "Claim", "Figure", "Sample", "T", "Table", "Text"]
