"""Efficiency (guide section 8): quantization, pruning and distillation, one concept per file.

- `quantize.py`: GGUF block quantizers Q8_0, Q4_0, Q4_1, bit-exact with llama.cpp's reference;
- `weight_only.py`: int8 / int4 weight-only linear layers (the streaming kernel, else PyTorch's packed CPU kernels);
- `gguf_export.py`: a run written as a GGUF file llama.cpp loads (the format itself: `lm2llm/gguf/writer.py`);
- `prune.py`: magnitude, Wanda and SparseGPT pruning, unstructured or N:M (2:4);
- `distill.py`: distillation losses (generalised Jensen-Shannon, Hinton's) and the Trainer objective;
- `variants.py`, `measure.py`, `pipeline.py`: a method name → a compressed model, its measured price, a run.
"""
