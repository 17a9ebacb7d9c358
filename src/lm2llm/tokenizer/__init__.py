"""Tokenizers: text ↔ token ids. Every tokenizer saves to and loads from a directory."""

from lm2llm.tokenizer.base import Tokenizer, load_tokenizer
from lm2llm.tokenizer.char import CharTokenizer
from lm2llm.tokenizer.hf_bpe import BPETokenizer
from lm2llm.tokenizer.streaming import StreamDecoder

__all__ = ["BPETokenizer", "CharTokenizer", "StreamDecoder", "Tokenizer", "load_tokenizer"]
