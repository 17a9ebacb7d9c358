"""The prediction test: fit on the smaller budgets, predict the largest budget's optimal model, then train it.

The fits of the smaller budgets' runs say which N is compute-optimal at the held-out budget and what loss it
will reach. Two ways: approach 2 (the iso-FLOP minima's N*(C) and frontier L*(C) extended) and approach 3
(the parametric L(N, D), evaluated at the exact N and D the run will train on). Which one counts is chosen
before the run by a back-test on the fitted budgets (`analysis.backtest`: the smaller budgets predict the
largest one), never by the held-out result. The shape of the sweep's rule nearest the chosen N is planned
(D = C / 6N), both predictions written down, and only then trained. The error is the measured loss over the
predicted one, minus one (both approaches' errors are kept).
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
    by_approach = {"approach 2": predicted["approach2_loss"],
                   "approach 3": float(fit.loss(plan.params[settings.count], plan.tokens))}
    record: dict[str, Any] = {"budget": budget, "optimum": predicted, "shape": shape.name,
                              "params": plan.params, "tokens": plan.tokens, "predicted_by": by_approach,
                              "predicted_loss": by_approach[predicted["optimum_from"]]}
    path = out / "prediction.json"
    earlier = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    if earlier and earlier.get("budget") == budget and earlier.get("shape") == shape.name and "predicted_by" in earlier:
        # the predictions made before the first training
        record.update(predicted_by=earlier["predicted_by"], predicted_loss=earlier["predicted_loss"])
    atomic_write_json(path, record)
    outcome = run_planned(plan, settings, threads=threads)
    record.update(measured_loss=outcome.val_loss, seconds=outcome.seconds, reused=outcome.reused, run=outcome.run,
                  relative_error=outcome.val_loss / record["predicted_loss"] - 1,
                  error_by={k: outcome.val_loss / v - 1 for k, v in record["predicted_by"].items()})
    atomic_write_json(path, record)
    return record
