"""Data: corpora, cleaning, deduplication, PII scrubbing, and token shards."""
