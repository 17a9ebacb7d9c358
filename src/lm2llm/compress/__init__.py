"""Efficiency (guide section 8): quantization, pruning and distillation, one concept per file.

- `quantize.py`: GGUF block quantizers Q8_0, Q4_0, Q4_1, bit-exact with llama.cpp's reference;
- `weight_only.py`: int8 / int4 weight-only linear layers on PyTorch's packed CPU kernels;
- `gguf_writer.py`: a run written as a GGUF file llama.cpp can load;
- `prune.py`: magnitude, Wanda and N:M (2:4) pruning;
- `distill.py`: the distillation loss (generalised Jensen-Shannon, forward and reverse KL at temperature T).
"""
