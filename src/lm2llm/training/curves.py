"""The loss-curve plot every run directory gets: training loss per logged step and validation loss per eval."""

from __future__ import annotations

from pathlib import Path

from lm2llm.runs import atomic_save


def latest_by_step(records: list[dict], key: str) -> list[tuple[int, float]]:
    """(step, value) for records holding `key`; a resumed run re-logs some steps, and the last record wins."""
    by_step = {r["step"]: r[key] for r in records if key in r and "step" in r}
    return sorted(by_step.items())


def plot_loss_curve(records: list[dict], path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label, style in (("loss", "train", "-"), ("val_loss", "validation", "o-")):
        points = latest_by_step(records, key)
        if points:
            ax.plot(*zip(*points, strict=True), style, label=label, markersize=3)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path
