"""Inference: sampling from logits (`sampling`), batched cached decoding on token ids (`engine`), text
with streaming and stop strings (`text`), and chat sessions (`chat`)."""

from lm2llm.inference.chat import ChatSession
from lm2llm.inference.engine import DecodeBatch, generate_ids
from lm2llm.inference.sampling import (
    Completion,
    Sampler,
    SampleStep,
    SamplingConfig,
    StopStrings,
    process_logits,
)
from lm2llm.inference.text import TextChunk, TextGenerator

__all__ = [
    "ChatSession",
    "Completion",
    "DecodeBatch",
    "SampleStep",
    "Sampler",
    "SamplingConfig",
    "StopStrings",
    "TextChunk",
    "TextGenerator",
    "generate_ids",
    "process_logits",
]
