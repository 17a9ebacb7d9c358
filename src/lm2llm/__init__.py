"""lm2llm: the journey from n-gram language models to LLMs, built from scratch and measured."""

__version__ = "0.1.0"
