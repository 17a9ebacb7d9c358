"""Evaluation results as table rows: value ± stderr per metric, the chance level, the chance-centred score."""

from __future__ import annotations

from lm2llm.evaluate.runner import format_value


def result_rows(results: list[dict]) -> dict[str, list[dict]]:
    """Task name → one row per model."""
    tables: dict[str, list[dict]] = {}
    for result in results:
        row = {"model": result["model"], "n": result["n"], "shots": result["shots"]}
        for name, value in result["metrics"].items():
            row[name] = format_value(value, result["stderr"].get(name))
        for name, centred in result["centred"].items():
            row[f"{name} centred [95% CI]"] = f"{centred['score']:.3f} [{centred['low']:.3f}, {centred['high']:.3f}]"
        row["chance"] = "—" if result["chance"] is None else f"{result['chance']:.3f}"
        row["seconds"] = f"{result['seconds']:.1f}"
        tables.setdefault(f"{result['task']} ({result['size']})" if result["size"] else result["task"], []).append(row)
    return tables
