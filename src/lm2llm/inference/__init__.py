"""Inference: sampling from logits (`sampling`), the one decode engine every generation drains (`engine`:
continuous batching, per-row samplers, stop strings, streaming, cancellation), text in and out (`text`),
and chat sessions (`chat`)."""

from lm2llm.inference.chat import ChatSession
from lm2llm.inference.engine import Engine, SequenceRequest, TextChunk, generate_ids
from lm2llm.inference.sampling import (
    Completion,
    Sampler,
    SampleStep,
    SamplingConfig,
    StopStrings,
    process_logits,
)
from lm2llm.inference.text import TextGenerator

__all__ = [
    "ChatSession",
    "Completion",
    "Engine",
    "SampleStep",
    "SequenceRequest",
    "Sampler",
    "SamplingConfig",
    "StopStrings",
    "TextChunk",
    "TextGenerator",
    "generate_ids",
    "process_logits",
]
