"""The logit lens: read every layer's residual stream as if it were the last one.

Two ways, as the literature uses them:

- **re-normalised** (nostalgebraist's original): `lm_head(norm_f(resid[l]))`, each layer normalised by
  its own scale;
- **cached final scale** (TransformerLens' `apply_ln_to_stack`): each layer's residual (centred, for
  LayerNorm) is divided by the scale the final norm computed on the *last* residual, then the norm's
  weight and bias and the unembedding are applied. This keeps the decomposition linear, so the
  per-layer lenses add up.

At the last point (resid[n_layer]) both are the model's own logits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.interpret.hooks import Trace, decoder
from lm2llm.models.transformer import RMSNorm

METHODS = ("renorm", "cached_scale")


def inverse_norm_scale(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What the final norm multiplies x (…, d) by → (…, 1): 1/√(mean x² + ε), or 1/√(var x + ε) for LayerNorm."""
    if not isinstance(norm, RMSNorm):
        x = x - x.mean(-1, keepdim=True)
    return torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps)


def lens_logits(model: nn.Module, trace: Trace, method: str = "renorm") -> torch.Tensor:
    """Logits read from every residual point: (n_layer + 1, B, T, vocab)."""
    model = decoder(model)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}")
    norm, weight = model.norm_f, model.lm_head.weight
    inverse = inverse_norm_scale(norm, trace.resid[-1].float())  # cached from the final residual
    lenses = []
    with torch.no_grad():
        for resid in trace.resid:  # one point at a time, shaped as in the model: the last one is bit-identical
            if method == "renorm":
                normed = norm(resid.to(weight.dtype))
            else:
                centred = resid if isinstance(norm, RMSNorm) else resid - resid.mean(-1, keepdim=True)
                normed = (centred * inverse).to(weight.dtype) * norm.weight
                if getattr(norm, "bias", None) is not None:
                    normed = normed + norm.bias
            lenses.append(F.linear(normed, weight).float())
    return torch.stack(lenses)


@dataclass
class LensReport:
    """Per residual point, at one position: the top tokens and the rank/probability of the final answer."""

    method: str
    answer_id: int
    top_ids: list[list[int]]  # (n_layer + 1) × k
    top_probs: list[list[float]]
    answer_rank: list[int]  # 0 = the top token
    answer_prob: list[float]

    def first_top_layer(self) -> int | None:
        """The first residual point from which the answer stays the top token, or None."""
        ranks = self.answer_rank
        for layer in range(len(ranks)):
            if all(r == 0 for r in ranks[layer:]):
                return layer
        return None


def lens_report(model: nn.Module, trace: Trace, method: str = "renorm", position: int = -1, k: int = 5,
                answer_id: int | None = None) -> LensReport:
    """The lens at one position of the first row; the answer defaults to the model's own top token there."""
    logits = lens_logits(model, trace, method)[:, 0, position]  # (n_layer + 1, vocab)
    probs = logits.softmax(-1)
    if answer_id is None:
        answer_id = int(trace.logits[0, position].argmax())
    top = probs.topk(k, dim=-1)
    ranks = (logits > logits[:, answer_id:answer_id + 1]).sum(-1)
    return LensReport(method, answer_id, top.indices.tolist(), top.values.tolist(), ranks.tolist(),
                      probs[:, answer_id].tolist())


def plot_lens(model: nn.Module, trace: Trace, labels: list[str], token_label: Callable[[int], str],
              method: str = "renorm") -> object:
    """The classic logit-lens picture: rows are residual points, columns positions; each cell shows the
    lens's top token, coloured by its probability."""
    from lm2llm.tour.plots import plt

    probs = lens_logits(model, trace, method)[:, 0].softmax(-1)  # (L + 1, T, vocab)
    top = probs.max(-1)
    n_points, n_pos = top.values.shape
    fig, ax = plt.subplots(figsize=(1.1 * n_pos + 2, 0.28 * n_points + 1.5))
    ax.imshow(top.values.numpy(), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for layer in range(n_points):
        for pos in range(n_pos):
            ax.text(pos, layer, token_label(int(top.indices[layer, pos]))[:10], ha="center", va="center", fontsize=6)
    ax.set_xticks(range(n_pos), labels, rotation=45, fontsize=7)
    ax.set_yticks(range(n_points), [f"{i}" for i in range(n_points)], fontsize=6)
    ax.set_ylabel("residual point (0 = embeddings)")
    ax.set_title(f"logit lens ({method}): top token per layer and position")
    fig.tight_layout()
    return fig
