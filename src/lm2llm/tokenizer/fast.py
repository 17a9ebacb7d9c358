"""The fast path: the same byte-level BPE through Hugging Face `tokenizers` (Rust).

Configured to match `bpe.py` exactly: the GPT-4 split regex as a `Split` pre-tokenizer, then `ByteLevel`
with its own regex off (the split is already done) and no prefix space, the 256-byte initial alphabet,
and the special tokens first. Converting between the two keeps one vocabulary for both engines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from lm2llm.tokenizer.bpe import SPLIT_PATTERN, ByteLevelBPE, bytes_to_unicode


def _configure(model: models.BPE) -> Tokenizer:
    tokenizer = Tokenizer(model)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_fast(
    texts: Iterable[str], vocab_size: int, special_tokens: list[str] = (), min_frequency: int = 0
) -> Tokenizer:
    tokenizer = _configure(models.BPE())
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def _spell(token: bytes) -> str:
    stand_in = bytes_to_unicode()
    return "".join(stand_in[b] for b in token)


def to_fast(bpe: ByteLevelBPE) -> Tokenizer:
    """A library tokenizer with exactly the vocabulary, merges and special tokens of `bpe`."""
    n_special = len(bpe.special_tokens)
    vocab = {token: i for token, i in bpe.special_tokens.items()}
    for i, token in enumerate(bpe.vocab[n_special:], start=n_special):
        vocab.setdefault(_spell(token), i)
    merges = [(_spell(bpe.vocab[left]), _spell(bpe.vocab[right])) for left, right in bpe.merges]
    tokenizer = _configure(models.BPE(vocab=vocab, merges=merges))
    tokenizer.add_special_tokens(list(bpe.special_tokens))
    return tokenizer


def special_tokens_of(tokenizer: Tokenizer) -> list[str]:
    """The special tokens of a library tokenizer, in id order."""
    added = tokenizer.get_added_tokens_decoder()
    return [added[i].content for i in sorted(added) if added[i].special]


def token_bytes_table(tokenizer: Tokenizer) -> list[bytes]:
    """`table[id]` is the bytes token `id` stands for (a special token: its UTF-8 text)."""
    from_stand_in = {ch: b for b, ch in bytes_to_unicode().items()}
    specials = set(special_tokens_of(tokenizer))
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    table: list[bytes] = [b""] * (max(vocab.values()) + 1)
    for token, i in vocab.items():
        table[i] = token.encode("utf-8") if token in specials else bytes(from_stand_in[ch] for ch in token)
    return table


def to_scratch(tokenizer: Tokenizer) -> ByteLevelBPE:
    """The from-scratch model holding the library tokenizer's vocabulary and merges."""
    model = json.loads(tokenizer.to_str())["model"]
    ids = model["vocab"]
    merges = []
    for merge in model["merges"]:
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        merges.append((ids[left], ids[right]))
    return ByteLevelBPE(token_bytes_table(tokenizer), merges, special_tokens_of(tokenizer))
