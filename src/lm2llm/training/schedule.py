"""Learning-rate schedules as pure functions of the step, so resuming needs nothing but the step number.

The step may be fractional: a run limited by time (`time_schedule`) passes how far through its steps the
clock says it is.

- `cosine`: linear warm-up, then half a cosine from `lr` down to `min_lr` at `max_steps` (GPT-2/3, nanoGPT).
- `wsd`: warm-up, a long stable phase at `lr`, then a linear decay to `min_lr` over the last
  `decay_fraction` of the steps (MiniCPM's warmup-stable-decay); a stable-phase checkpoint can be
  decayed later or trained further, which cosine does not allow.
- `constant`: warm-up, then `lr`.
"""

from __future__ import annotations

import math


def learning_rate(step: float, *, lr: float, min_lr: float, warmup_steps: int, max_steps: int,
                  schedule: str = "cosine", decay_fraction: float = 0.2) -> float:
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "wsd":
        decay_steps = max(1, round(max_steps * decay_fraction))
        decay_start = max(warmup_steps, max_steps - decay_steps)
        if step < decay_start:
            return lr
        progress = min(1.0, (step - decay_start) / max(1, max_steps - decay_start))
        return lr - (lr - min_lr) * progress
    if schedule == "cosine":
        progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
    raise ValueError(f"unknown schedule {schedule!r}")
