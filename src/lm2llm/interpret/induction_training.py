"""Watching an induction head form: a 2-layer attention-only transformer trained on repeated random tokens.

Each training sequence is a random prefix, then L random tokens, then the same L tokens again, with L
and the prefix drawn anew for every sequence (so the copy sits at no fixed distance and a head that looks a
fixed number of positions back cannot do the job). The end of the sequence may cut the second copy short:
were every copy complete, the last position would end a copy as often as it continues one, and the model
would learn not to copy there. The tokens before the repeat cannot be predicted (their
loss stays at ln V); the repeat can, but only by a two-head circuit: a previous-token
head in layer 0 writes "the token before me was t" into each position, and an induction head in layer 1
looks for the position whose previous token is the current token and copies what stands there. A single
layer cannot do this, and the circuit forms suddenly: the second half's loss sits near ln V, then drops
within a few hundred steps (Olsson et al. 2022, "phase change").

The model (Elhage et al. 2021's "attention-only" transformers): token and learned position embeddings,
two layers of multi-head causal attention added to the residual stream (no MLP, no normalisation), an
unembedding. Heads are scored with TransformerLens' induction detector (`interpret.induction`); by that
definition a perfect induction head scores the share of positions that have an earlier copy to find
(`perfect_score`, ≈ 0.5 on a sequence repeated once), so the goal is stated relative to that maximum.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lm2llm.interpret.induction import head_scores, induction_pattern, repeated_random_tokens


@dataclass
class InductionConfig:
    vocab_size: int = 256  # few chance repeats among 16 random tokens, as in TransformerLens' use of the detector
    half_length: int = 16
    d_model: int = 64
    n_head: int = 2
    batch_size: int = 32
    steps: int = 5000
    lr: float = 1e-2  # decayed along a cosine to a tenth by `steps`: the attention sharpens as it falls
    score_every: int = 250
    seed: int = 0
    max_seconds: float = 170.0  # CPU seconds (all threads): the goal's budget is 3 minutes on idle cores


class AttentionOnly(nn.Module):
    """Embeddings → 2 × (residual += multi-head causal attention) → unembedding; keeps its attention maps."""

    def __init__(self, cfg: InductionConfig, n_layer: int = 2):
        super().__init__()
        self.n_head = cfg.n_head
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position = nn.Parameter(torch.randn(2 * cfg.half_length, cfg.d_model) * 0.02)
        self.qkv = nn.ModuleList(nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False) for _ in range(n_layer))
        self.out = nn.ModuleList(nn.Linear(cfg.d_model, cfg.d_model, bias=False) for _ in range(n_layer))
        self.unembed = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(logits (B, T, V), attention per layer (B, H, T, T))."""
        batch, length = ids.shape
        x = self.embed(ids) + self.position[:length]
        mask = torch.ones(length, length, dtype=torch.bool).tril()
        attention = []
        for qkv, out in zip(self.qkv, self.out, strict=True):
            q, k, v = (t.view(batch, length, self.n_head, -1).transpose(1, 2) for t in qkv(x).chunk(3, dim=-1))
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.size(-1))
            weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
            attention.append(weights)
            x = x + out((weights @ v).transpose(1, 2).reshape(batch, length, -1))
        return self.unembed(x), attention


def varied_repeats(cfg: InductionConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (B, 2·half_length + 1), mask (B, 2·half_length) of the targets a copy can predict): per row a
    random prefix, L ∈ [half_length/2, half_length] random tokens, and the same L tokens again (cut short by the
    end of the row, at least two of them)."""
    length = 2 * cfg.half_length + 1  # inputs are all but the last: as long as the probe
    ids = torch.randint(cfg.vocab_size, (cfg.batch_size, length), generator=generator)
    mask = torch.zeros(cfg.batch_size, length - 1, dtype=torch.bool)
    for row in range(cfg.batch_size):
        half = int(torch.randint(cfg.half_length // 2, cfg.half_length + 1, (1,), generator=generator))
        start = int(torch.randint(0, length - half - 1, (1,), generator=generator))
        end = min(start + 2 * half, length)  # the end of the sequence may cut the second copy short
        ids[row, start + half:end] = ids[row, start:end - half]
        mask[row, start + half:end - 1] = True  # targets: 2nd copy's tokens after its first
    return ids, mask


def perfect_score(ids: torch.Tensor) -> float:
    """The detector's score of a perfect induction head: the share of positions with an earlier copy."""
    return float(torch.stack([induction_pattern(row).sum(-1).clamp(max=1).mean() for row in ids]).mean())


@dataclass
class InductionRun:
    steps: list[int] = field(default_factory=list)  # where each loss below was measured
    first_half_loss: list[float] = field(default_factory=list)  # tokens no copy predicts
    second_half_loss: list[float] = field(default_factory=list)  # the repeat's tokens (after its first)
    score_steps: list[int] = field(default_factory=list)
    best_score: list[float] = field(default_factory=list)  # best head's score at each score step (0 first)
    best_head: tuple[int, int] = (0, 0)
    final_scores: list[list[float]] = field(default_factory=list)
    perfect: float = 0.5
    chance_loss: float = 0.0  # ln V: guessing uniformly
    seconds: float = 0.0  # wall clock: depends on what else the machine runs
    cpu_seconds: float = 0.0  # this process's CPU time, all threads: on idle cores the wall time is at most this

    @property
    def relative_score(self) -> float:
        return self.best_score[-1] / self.perfect

    def drop_steps(self) -> int | None:
        """Steps from the last time the second half's loss was ≥ 0.9 ln V to the first time it was below
        half of ln V: how sudden the phase change was (None when it never dropped)."""
        below = self.phase_change_step()
        if below is None:
            return None
        above = [s for s, loss in zip(self.steps, self.second_half_loss, strict=True)
                 if s < below and loss >= 0.9 * self.chance_loss]
        return below - (above[-1] if above else 0)

    def phase_change_step(self) -> int | None:
        """First step where the second half's loss is below half of ln V (the drop, not the slow start)."""
        return next((s for s, loss in zip(self.steps, self.second_half_loss, strict=True)
                     if loss < self.chance_loss / 2), None)


def train_induction(cfg: InductionConfig = InductionConfig()) -> tuple[AttentionOnly, InductionRun]:
    """Train until `cfg.steps` or `cfg.max_seconds`, logging both halves' loss and the best head's score."""
    torch.manual_seed(cfg.seed)
    model = AttentionOnly(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cfg.steps, eta_min=cfg.lr / 10)
    probe = repeated_random_tokens(cfg.vocab_size, cfg.half_length, 64, seed=cfg.seed + 10_000)
    run = InductionRun(perfect=perfect_score(probe), chance_loss=math.log(cfg.vocab_size))
    def score(step: int) -> None:
        with torch.no_grad():
            scores = head_scores(model(probe)[1], probe)
        run.score_steps.append(step)
        run.best_score.append(float(scores.max()))
        run.best_head = divmod(int(scores.argmax()), scores.size(1))
        run.final_scores = scores.tolist()

    score(0)  # the untrained model: the chance level
    start, cpu_start = time.perf_counter(), time.process_time()
    generator = torch.Generator().manual_seed(cfg.seed)
    for step in range(1, cfg.steps + 1):
        ids, copied = varied_repeats(cfg, generator)
        logits, _ = model(ids[:, :-1])
        losses = F.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        optimizer.zero_grad(set_to_none=True)
        losses.mean().backward()
        optimizer.step()
        schedule.step()
        run.steps.append(step)
        run.first_half_loss.append(float(losses.detach()[~copied].mean()))
        run.second_half_loss.append(float(losses.detach()[copied].mean()))
        out_of_time = time.process_time() - cpu_start > cfg.max_seconds
        if step % cfg.score_every == 0 or step == cfg.steps or out_of_time:
            score(step)
        if out_of_time:
            break
    run.seconds, run.cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return model.eval(), run


def plot_induction_run(run: InductionRun) -> object:
    """Both halves' loss per step (the phase change) and the best head's induction score."""
    from lm2llm.tour.plots import plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    smooth = max(1, len(run.steps) // 100)

    def smoothed(values: list[float]) -> list[float]:
        return [sum(values[max(0, i - smooth):i + 1]) / len(values[max(0, i - smooth):i + 1])
                for i in range(len(values))]

    left.plot(run.steps, smoothed(run.first_half_loss), label="tokens before the repeat (unpredictable)")
    left.plot(run.steps, smoothed(run.second_half_loss), label="the repeat")
    left.axhline(run.chance_loss, color="grey", linestyle=":", label="ln V (uniform guess)")
    left.set_xlabel("step")
    left.set_ylabel("loss (nats)")
    left.legend()
    right.plot(run.score_steps, run.best_score, marker="o")
    right.axhline(run.perfect, color="grey", linestyle=":", label=f"perfect head ({run.perfect:.3f})")
    right.set_xlabel("step")
    right.set_ylabel("best head's induction score")
    right.set_ylim(0, run.perfect * 1.1)
    right.legend()
    fig.tight_layout()
    return fig
