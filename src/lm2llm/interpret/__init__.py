"""Looking inside a decoder: attention maps, logit lens, activation patching, induction heads, probes.

Everything works on any `lm2llm.models.Transformer` (our GPTs and LLaMAs, SmolLM2 read from its GGUF
file) through PyTorch forward hooks (`hooks.py`): the model that generates text is the model we look
into, never a second implementation of it.
"""

from lm2llm.interpret.hooks import Trace, patch_residual, run_with_cache

__all__ = ["Trace", "patch_residual", "run_with_cache"]
