"""Inference: sampling from logits, and (in `engine`) cached, batched and streaming generation."""

from lm2llm.inference.sampling import (
    Completion,
    Sampler,
    SampleStep,
    SamplingConfig,
    StopStrings,
    generate_from,
    process_logits,
)

__all__ = [
    "Completion",
    "SampleStep",
    "Sampler",
    "SamplingConfig",
    "StopStrings",
    "generate_from",
    "process_logits",
]
