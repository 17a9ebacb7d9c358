import numpy as np
import pytest
import torch

from lm2llm.data.shards import ShardWriter, TokenShards, dtype_for
from lm2llm.errors import UserError
from lm2llm.tokenizer import CharTokenizer, load_tokenizer


def test_dtype_follows_vocabulary():
    assert dtype_for(50_000) == np.uint16 and dtype_for(70_000) == np.uint32


def test_char_tokenizer_roundtrip_korean(tmp_path):
    tok = CharTokenizer.train(["hello 세계", "한국어"])
    text = "hello 한국"
    assert tok.decode(tok.encode(text)) == text
    assert tok.encode("😀") == [tok.unk_id]
    loaded = load_tokenizer(tok.save(tmp_path))
    assert loaded.encode(text) == tok.encode(text)


def test_shards_stream_and_batches_are_deterministic(tmp_path):
    writer = ShardWriter(tmp_path, vocab_size=70_000)
    for chunk in range(5):
        writer.write("train", np.arange(chunk * 100, chunk * 100 + 100) + 65_000)
    writer.write("val", np.arange(50))
    writer.close(tokenizer="test")
    shards = TokenShards(tmp_path)
    assert shards.meta["dtype"] == "uint32" and shards.num_tokens("train") == 500
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x1, y1 = shards.random_batch("train", 4, 8, g1)
    x2, _ = shards.random_batch("train", 4, 8, g2)
    assert torch.equal(x1, x2) and torch.equal(x1[:, 1:], y1[:, :-1])
    batches = list(shards.sequential_batches("val", 2, 7))
    assert sum(b[0].shape[0] for b in batches) == 49 // 7
    assert batches[0][0][0].tolist() == list(range(7))


def test_too_short_split_is_a_user_error(tmp_path):
    writer = ShardWriter(tmp_path, vocab_size=10)
    writer.write("train", [1, 2, 3])
    writer.close()
    with pytest.raises(UserError, match="fewer than"):
        TokenShards(tmp_path).random_batch("train", 1, 8, torch.Generator())


def test_writer_failure_leaves_no_meta(tmp_path):
    with pytest.raises(ValueError), ShardWriter(tmp_path, vocab_size=10) as writer:
        writer.write("train", [1, 2, 3])
        writer.write("train", [99])  # outside the vocabulary
    assert not (tmp_path / "meta.json").exists()
    with pytest.raises(UserError, match="no meta.json"):
        TokenShards(tmp_path)
