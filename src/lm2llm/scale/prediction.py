"""The prediction test: fit on the smaller budgets, predict the largest budget's optimal model, then train it.

The parametric fit of the smaller budgets' runs says which N is compute-optimal at the held-out budget and
what loss it will reach; the shape of the sweep's rule nearest that N is planned (D = C / 6N), its loss
predicted for the exact N and D it will train on, written down, and only then trained. The error is the
measured loss over the predicted one, minus one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lm2llm.data.shards import TokenShards
from lm2llm.runs import atomic_write_json
from lm2llm.scale.analysis import parametric_fit, points_of, predict_optimum
from lm2llm.scale.shapes import nearest_shape
from lm2llm.scale.sweep import SweepSettings, plan_run, run_planned


def prediction_test(runs: list[dict], budget: float, settings: SweepSettings, out: str | Path,
                    threads: int = 0) -> dict[str, Any]:
    """Predict, record the prediction in `<out>/prediction.json`, train the predicted optimum, compare."""
    out = Path(out)
    vocab = TokenShards(settings.data).vocab_size
    predicted = predict_optimum(runs, budget, settings.count)
    shape = nearest_shape(predicted["params"], vocab, settings.context, settings.count)
    plan = plan_run(budget, shape, settings, vocab, out)
    fit = parametric_fit(points_of(runs, settings.count))
    record: dict[str, Any] = {"budget": budget, "optimum": predicted, "shape": shape.name,
                              "params": plan.params, "tokens": plan.tokens,
                              "predicted_loss": float(fit.loss(plan.params[settings.count], plan.tokens))}
    path = out / "prediction.json"
    earlier = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if earlier and earlier.get("budget") == budget and earlier.get("shape") == shape.name:
        record["predicted_loss"] = earlier["predicted_loss"]  # the prediction made before the first training
    atomic_write_json(path, record)
    outcome = run_planned(plan, settings, threads=threads)
    record.update(measured_loss=outcome.val_loss, seconds=outcome.seconds, reused=outcome.reused, run=outcome.run,
                  relative_error=outcome.val_loss / record["predicted_loss"] - 1)
    atomic_write_json(path, record)
    return record
