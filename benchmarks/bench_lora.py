"""LoRA training step: our adapters vs PEFT's on the same model, and both vs full fine-tuning.

One optimizer step (forward, backward, AdamW) of `gpt-small` on a batch of random tokens. Figures: step
time, trainable parameters, AdamW state and adapter file size. LoRA does not make the forward pass
cheaper (the frozen model still runs in full); it saves gradients and optimizer memory for frozen
weights, and the adapter file is a small fraction of the model's.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402
from harness import best_of, write_result  # noqa: E402

from lm2llm.models import build_model  # noqa: E402
from lm2llm.models.lora import ADAPTER_WEIGHTS, LoraConfig, add_lora, save_adapter, trainable_share  # noqa: E402

VOCAB, BATCH, SEQ, RANK, ALPHA = 512, 8, 128, 8, 16
TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "up", "down"]


def make_step(model: torch.nn.Module, ids: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        out = model(ids[:, :-1], targets=ids[:, 1:])
        out[1].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocates the optimizer state
    return step


def interleaved_best(steps: list[Callable[[], None]], rounds: int = 5) -> list[float]:
    """Fastest time of each step over `rounds`, taking turns so that load on the machine hits all alike."""
    best = [float("inf")] * len(steps)
    for _ in range(rounds):
        for i, step in enumerate(steps):
            best[i] = min(best[i], best_of(step, repeats=1))
    return best


def adam_state_bytes(model: torch.nn.Module) -> int:
    return 2 * 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)  # exp_avg + exp_avg_sq, fp32


def main() -> None:
    import peft

    torch.manual_seed(0)
    base = build_model("gpt", "gpt-small", vocab_size=VOCAB)
    ids = torch.randint(0, VOCAB, (BATCH, SEQ + 1))

    full = copy.deepcopy(base).train()
    ours = copy.deepcopy(base).train()
    add_lora(ours, LoraConfig(r=RANK, alpha=ALPHA, targets=TARGETS))
    theirs = peft.get_peft_model(copy.deepcopy(base), peft.LoraConfig(r=RANK, lora_alpha=ALPHA,
                                                                       target_modules=TARGETS)).train()
    with tempfile.TemporaryDirectory() as tmp:
        adapter_bytes = (save_adapter(ours, tmp) / ADAPTER_WEIGHTS).stat().st_size
    model_bytes = 4 * sum({id(p): p.numel() for p in base.parameters()}.values())

    full_s, ours_s, peft_s = interleaved_best([make_step(m, ids) for m in (full, ours, theirs)])
    trainable, total = trainable_share(ours)
    write_result(
        "lora",
        figures={"model": "gpt-small", "params": total, "rank": RANK, "batch_tokens": BATCH * SEQ,
                 "lora_step_ms": 1000 * ours_s, "full_step_ms": 1000 * full_s,
                 "lora_trainable_params": trainable, "lora_trainable_share": trainable / total,
                 "lora_adam_state_mb": adam_state_bytes(ours) / 2**20, "full_adam_state_mb": adam_state_bytes(full) / 2**20,
                 "adapter_file_kb": adapter_bytes / 1024, "model_fp32_kb": model_bytes / 1024},
        peers={"peft_lora_step_ms": 1000 * peft_s, "peft_trainable_params": trainable_share(theirs)[0]},
        ratios={"ours_over_peft_step_time": ours_s / peft_s, "lora_over_full_step_time": ours_s / full_s,
                "adapter_over_model_size": adapter_bytes / model_bytes},
        notes="2-core CPU shared with other jobs: step times are noisy; best of 5 interleaved rounds.",
    )


if __name__ == "__main__":
    main()
