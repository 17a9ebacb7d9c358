"""A retrieval index on disk: chunks, BM25 postings and (optionally) MiniLM passage vectors.

Layout of an index directory (no pickle anywhere):

- `index.json`: `{"format": "lm2llm-rag-index", "version": 1, "chunking": {...}, "bm25": {k1, b, epsilon,
  idf_kind}, "dense": {"model", "dim"} or null, "sources": [...], "n_chunks": N}`; a reader refuses another
  format or version instead of misreading it.
- `chunks.jsonl`: one `{"text", "origin", "start", "end"}` per chunk, in id order (origin names the
  document: a path, `module:qualname`, `encyclopedia:e042`).
- `vocab.json`: BM25's terms in id order.
- `arrays.safetensors`: `indptr`, `doc_ids`, `tfs`, `doc_len` (BM25) and `embeddings` (N × 384 float32).

The directory is built under a temporary name and renamed into place (`lm2llm.runs.atomic_dir`), so an
interrupted build leaves no half-written index.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lm2llm.errors import UserError
from lm2llm.rag.bm25 import BM25
from lm2llm.rag.chunking import chunk_text
from lm2llm.rag.dense import ENCODER_NAME, dense_top_k, embed
from lm2llm.rag.fusion import reciprocal_rank_fusion
from lm2llm.rag.terms import content_terms
from lm2llm.runs import atomic_dir, atomic_save, atomic_write_json, atomic_write_text

FORMAT = "lm2llm-rag-index"
VERSION = 1
MODES = ("bm25", "dense", "hybrid")
FUSION_DEPTH = 100  # how many of each ranking's best go into reciprocal rank fusion


@dataclass(frozen=True)
class Chunk:
    text: str
    origin: str
    start: int
    end: int


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    score: float  # BM25 score, cosine, or fused RRF score, by mode
    chunk: Chunk


@dataclass
class RagIndex:
    chunks: list[Chunk]
    bm25: BM25
    embeddings: np.ndarray | None = None
    chunking: dict = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, documents: Iterable[tuple[str, str]], *, dense: bool = True, max_chars: int = 800,
              overlap_chars: int = 200, sources: Sequence[str] = (), bf16: bool = False) -> RagIndex:
        """Index (origin, text) documents: chunk, count terms, and embed each chunk when `dense` (in bfloat16
        autocast when `bf16`: `dense.embed`)."""
        chunks = [Chunk(span.text, origin, span.start, span.end)
                  for origin, text in documents for span in chunk_text(text, max_chars, overlap_chars)]
        if not chunks:
            raise UserError("the corpus is empty: no text to index", where=", ".join(sources) or None,
                            hint="give files or a registered source with text in them")
        bm25 = BM25.fit([content_terms(c.text) for c in chunks])
        embeddings = embed([c.text for c in chunks], bf16=bf16) if dense else None
        return cls(chunks, bm25, embeddings, {"max_chars": max_chars, "overlap_chars": overlap_chars},
                   list(sources))

    def search(self, question: str, k: int = 5, mode: str = "hybrid") -> list[Hit]:
        """The k best chunks for `question` by BM25, by MiniLM cosine, or by both fused (RRF, k = 60)."""
        if mode not in MODES:
            raise UserError(f"unknown retrieval mode {mode!r}", hint=f"one of: {', '.join(MODES)}")
        if mode != "bm25" and self.embeddings is None:
            raise UserError(f"this index has no passage vectors, so mode {mode!r} cannot run",
                            hint="use --mode bm25 or rebuild the index without --no-dense")
        if mode == "bm25":
            ids, scores = self.bm25.top_k(content_terms(question), k)
        elif mode == "dense":
            ids, scores = dense_top_k(self.embeddings, question, k)
        else:
            lexical, _ = self.bm25.top_k(content_terms(question), FUSION_DEPTH)
            semantic, _ = dense_top_k(self.embeddings, question, FUSION_DEPTH)
            fused = reciprocal_rank_fusion([lexical.tolist(), semantic.tolist()])[:k]
            ids, scores = [i for i, _ in fused], [s for _, s in fused]
        return [Hit(int(i), float(s), self.chunks[int(i)]) for i, s in zip(ids, scores, strict=True)]

    def save(self, path: str | os.PathLike, *, force: bool = False) -> Path:
        from safetensors.numpy import save_file

        target = _writable_target(Path(path), force, self.sources)
        arrays = dict(self.bm25.arrays())
        if self.embeddings is not None:
            arrays["embeddings"] = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        meta = {"format": FORMAT, "version": VERSION, "chunking": self.chunking, "bm25": self.bm25.params(),
                "dense": None if self.embeddings is None else {"model": ENCODER_NAME, "dim": self.embeddings.shape[1]},
                "sources": self.sources, "n_chunks": len(self.chunks)}
        with atomic_dir(target, "rag-index", replace=force) as build:
            atomic_save(build / "arrays.safetensors", lambda p: save_file(arrays, str(p)))
            atomic_write_text(build / "chunks.jsonl", "".join(json.dumps(asdict(c), ensure_ascii=False) + "\n"
                                                               for c in self.chunks))
            atomic_write_json(build / "vocab.json", list(self.bm25.vocab))
            atomic_write_json(build / "index.json", meta)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike) -> RagIndex:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        from lm2llm.runs import read_json

        directory = Path(path)
        meta = read_json(directory / "index.json")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise UserError("not an lm2llm retrieval index", where=str(directory / "index.json"),
                            hint="build one with 'lm2llm rag index SOURCE --out DIR'")
        if meta.get("version") != VERSION:
            raise UserError(f"index format version {meta.get('version')!r}, this lm2llm reads version {VERSION}",
                            where=str(directory / "index.json"), hint="rebuild the index with this lm2llm")
        try:
            arrays = load_file(str(directory / "arrays.safetensors"))
        except (OSError, SafetensorError) as exc:
            raise UserError(f"cannot read the index arrays: {exc}", where=str(directory / "arrays.safetensors")) from exc
        chunks = [Chunk(**json.loads(line)) for line in
                  (directory / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line]
        vocab = {term: i for i, term in enumerate(read_json(directory / "vocab.json"))}
        bm25 = BM25(vocab, arrays["indptr"], arrays["doc_ids"], arrays["tfs"], arrays["doc_len"], **meta["bm25"])
        embeddings = arrays.get("embeddings")
        n = len(chunks)
        if (len(bm25.indptr) != len(vocab) + 1 or len(bm25.doc_len) != n or meta.get("n_chunks") != n
                or (embeddings is not None and embeddings.shape[0] != n)):
            raise UserError("the index files disagree on the number of chunks or terms (a damaged copy?)",
                            where=str(directory), hint="rebuild the index")
        return cls(chunks, bm25, embeddings, meta.get("chunking", {}), meta.get("sources", []))


def _writable_target(target: Path, force: bool, sources: Sequence[str]) -> Path:
    """Refuse to overwrite anything but an empty directory or, with `force`, an earlier index of ours; never
    the working directory, /, home, or a folder holding (or inside) an input."""
    resolved = target.resolve()
    inputs = [Path(s).resolve() for s in sources if Path(s).exists()]
    if (resolved in (Path.cwd().resolve(), Path("/"), Path.home().resolve())
            or any(resolved == p or resolved in p.parents or p in resolved.parents for p in inputs)):
        raise UserError("refusing to write an index over this directory", where=str(target),
                        hint="give a new directory for --out")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        ours = (target / "index.json").is_file() and FORMAT in (target / "index.json").read_text(encoding="utf-8")
        if not ours:
            raise UserError("--out exists and is not an lm2llm index; nothing was written", where=str(target))
        if not force:
            raise UserError("--out already holds an index", where=str(target), hint="pass --force to replace it")
    return target
