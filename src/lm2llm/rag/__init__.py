"""(7.1) Retrieval-augmented generation: chunking, BM25, dense and hybrid retrieval, an index on disk,
grounded answers with numbered citations, and a deterministic groundedness check."""
