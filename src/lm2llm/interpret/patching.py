"""Activation patching: which layer and position carry the information that decides the answer.

Run a clean prompt ("The capital of France is") and a corrupted one of the same length ("The capital of
Italy is"). The metric is the logit difference at the last position, logit(clean answer) − logit(corrupted
answer). Then run the corrupted prompt again with one residual point, resid[l] at position p, replaced by
its clean value: the effect (patched − corrupted) / (clean − corrupted) is 1 where that single vector
restores the clean behaviour and 0 where it changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from lm2llm.errors import UserError
from lm2llm.interpret.hooks import decoder, patch_residual, run_with_cache


@dataclass
class PatchingResult:
    clean_diff: float
    corrupted_diff: float
    points: list[int]  # the residual points patched
    effect: list[list[float]]  # len(points) × T

    def best(self) -> tuple[int, int, float]:
        """(residual point, position, effect) of the strongest restoration."""
        table = torch.tensor(self.effect)
        index = int(table.argmax())
        row, position = divmod(index, table.size(1))
        return self.points[row], position, float(table[row, position])


def logit_diff(logits: torch.Tensor, good: int, bad: int) -> torch.Tensor:
    """logit(good) − logit(bad) at the last position, per row."""
    return logits[:, -1, good] - logits[:, -1, bad]


@torch.no_grad()
def patch_residual_stream(model: nn.Module, clean: list[int], corrupted: list[int], good: int, bad: int,
                          points: list[int] | None = None) -> PatchingResult:
    """The normalised patching effect of residual points (default: all) at every position.

    Each point is one batched forward pass: row p of the batch is the corrupted prompt with position p
    patched, so a T-token prompt costs one pass of batch T per point.
    """
    model = decoder(model)
    if len(clean) != len(corrupted):
        raise UserError(f"the clean prompt has {len(clean)} tokens and the corrupted one {len(corrupted)}",
                        where="--corrupted", hint="patching compares positions one to one: use prompts of equal "
                                                  "token length")
    if good == bad:
        raise UserError("the clean and corrupted answers are the same token", where="--answer")
    clean_trace = run_with_cache(model, torch.tensor([clean]))
    corrupted_logits, _ = model(torch.tensor([corrupted]))
    clean_diff = float(logit_diff(clean_trace.logits, good, bad)[0])
    corrupted_diff = float(logit_diff(corrupted_logits.float(), good, bad)[0])
    span = clean_diff - corrupted_diff
    if abs(span) < 1e-6:
        raise UserError("the clean and corrupted prompts give the same logit difference: nothing to restore",
                        hint="choose a corruption that changes the answer")
    positions = torch.arange(len(clean))
    batch = torch.tensor([corrupted]).expand(len(clean), -1)
    points = list(range(clean_trace.resid.size(0))) if points is None else points
    effect = []
    for layer in points:
        with patch_residual(model, layer, clean_trace.resid[layer, 0, positions], positions):
            patched, _ = model(batch)
        effect.append(((logit_diff(patched.float(), good, bad) - corrupted_diff) / span).tolist())
    return PatchingResult(clean_diff, corrupted_diff, points, effect)


def plot_patching(result: PatchingResult, labels: list[str]) -> object:
    """Heat map of the normalised effect: residual point × position."""
    from lm2llm.tour.plots import plt

    effect = torch.tensor(result.effect)
    fig, ax = plt.subplots(figsize=(0.9 * len(labels) + 2.5, 0.2 * effect.size(0) + 1.8))
    image = ax.imshow(effect.numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    ax.set_yticks(range(len(result.points)), result.points, fontsize=6)
    ax.set_ylabel("residual point patched (0 = embeddings)")
    ax.set_title("activation patching: (patched − corrupted) / (clean − corrupted)")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig
