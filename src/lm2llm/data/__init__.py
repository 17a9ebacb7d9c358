"""Data: corpora, cleaning, deduplication, PII scrubbing, and token shards."""

from lm2llm.data.sources import Source, describe, first_chars, iter_documents, list_sources, load_documents

__all__ = ["Source", "describe", "first_chars", "iter_documents", "list_sources", "load_documents"]
