"""Input-major weights: the same linear layers, stored so that decoding one sequence reads them faster.

`nn.Linear` keeps its weight as (out, in) rows and computes x · Wᵀ. For one token at a time (batch-1
decoding) the matmul is a matrix-vector product that reads every weight once, so its speed is how fast
the kernel streams the weight from memory. On this project's CPU (fp32, torch's default BLAS) it streams
an (in, out)-ordered weight about 1.8x faster than an (out, in)-ordered one, while batches of 8 and
prompts of 80 tokens ran at the same speed either way, and bf16 slightly faster either way
(`benchmarks/bench_generate.py` times the model both ways). So inference stores each weight transposed in
memory and hands the layer its transpose view: the same values and shape, the same results to rounding.
"""

from __future__ import annotations

from torch import nn


def input_major(model: nn.Module) -> nn.Module:
    """Re-store every linear weight (in, out)-ordered in memory, viewed as (out, in); tied weights stay tied.

    For inference only: the views are not contiguous, so a model to be trained or saved should be
    loaded again instead.
    """
    replaced: dict[int, nn.Parameter] = {}
    for module in model.modules():
        if isinstance(module, nn.Linear):
            weight = module.weight
            if id(weight) not in replaced:
                replaced[id(weight)] = nn.Parameter(weight.detach().t().contiguous().t(),
                                                    requires_grad=weight.requires_grad)
            module.weight = replaced[id(weight)]
    for module in model.modules():  # an embedding tied to an output layer shares the new parameter
        if isinstance(module, nn.Embedding) and id(module.weight) in replaced:
            module.weight = replaced[id(module.weight)]
    return model
