"""The sweep's default data: python-docs as byte-level BPE token shards (what the tour's chapter 3.1 trains on).

Every 20th document is held out for the validation loss. The vocabulary is small (512) so that the
embedding does not dwarf models of a few ten thousand parameters, which is also why the counting
convention matters so much at this scale.
"""

from __future__ import annotations

from pathlib import Path

from lm2llm.data import load_documents
from lm2llm.data.shards import ShardWriter
from lm2llm.tokenizer import BPETokenizer

VOCAB = 512


def prose_shards(directory: str | Path, docs: int | None = None, vocab_size: int = VOCAB) -> Path:
    """Write `directory` (train.bin, val.bin, meta.json, tokenizer/) unless it is already complete."""
    directory = Path(directory)
    if (directory / "meta.json").is_file():
        return directory
    documents = load_documents("python-docs", limit=docs)
    train, val = [d for i, d in enumerate(documents) if i % 20], documents[::20]
    tokenizer = BPETokenizer.train(train, vocab_size)
    tokenizer.save(directory / "tokenizer")
    writer = ShardWriter(directory, tokenizer.vocab_size)
    for name, split in (("train", train), ("val", val)):
        for doc in split:
            writer.write(name, [*tokenizer.encode(doc), tokenizer.eos_id])
    writer.close(tokenizer=tokenizer.kind, tokenizer_dir="tokenizer", documents=len(documents))
    return directory
