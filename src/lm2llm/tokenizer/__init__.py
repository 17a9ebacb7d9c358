"""Tokenizers: text ↔ token ids. Every tokenizer saves to and loads from a directory."""

from lm2llm.tokenizer.base import Tokenizer, load_tokenizer
from lm2llm.tokenizer.char import CharTokenizer

__all__ = ["CharTokenizer", "Tokenizer", "load_tokenizer"]
