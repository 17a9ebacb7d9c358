"""Run tasks on a model: build lm-eval's requests from a task file, send them in one batch per task, score.

Requests of a task go to the scorer together, so its length batching sees all of them. Per-item metrics
(acc, exact match, F1) are means with lm-eval's standard error; corpus metrics (bits per byte, perplexity)
are ratios of sums with a bootstrap standard error. Scores with a chance level (multiple choice) are also
reported centred on chance with a 95 % interval.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from lm2llm.errors import UserError
from lm2llm.evaluate import metrics as M
from lm2llm.evaluate.requests import Generation, Scorer
from lm2llm.evaluate.tasks import Task
from lm2llm.runs import atomic_write_json, read_json

CORPUS_METRICS = {"bits_per_byte", "bits_per_char", "byte_perplexity", "word_perplexity", "perplexity"}
HIGHER_IS_BETTER = {"acc": True, "acc_norm": True, "acc_mutual_info": True, "exact_match": True, "f1": True,
                    "bits_per_byte": False, "bits_per_char": False, "byte_perplexity": False,
                    "word_perplexity": False, "perplexity": False}


@dataclass
class TaskResult:
    task: str
    model: str
    n: int
    shots: int
    metrics: dict[str, float]
    stderr: dict[str, float]
    chance: float | None = None
    centred: dict[str, dict[str, float]] = field(default_factory=dict)  # metric → {score, low, high}
    seconds: float = 0.0
    size: str = ""


def run_task(scorer: Scorer, task: Task, *, shots: int | None = None, limit: int | None = None) -> TaskResult:
    """Score `scorer` on `task` (the first `limit` documents, `shots` examples in each prompt)."""
    shots = task.num_fewshot if shots is None else shots
    docs = task.docs()[:limit] if limit else task.docs()
    if not docs:
        raise UserError(f"task {task.name} has no documents", where=str(task.data_files[task.test_split]))
    start = time.perf_counter()
    examples = task.fewshot_docs(shots)
    items, corpus = _score(scorer, task, docs, examples)
    values, errors = {}, {}
    for name, scores in items.items():
        values[name], errors[name] = float(np.mean(scores)), M.mean_stderr(scores)
    for name, (logprobs, units, statistic) in corpus.items():
        values[name] = statistic(logprobs, units)
        errors[name] = M.bootstrap_stderr(logprobs, units, statistic)
    result = TaskResult(task.name, scorer.name, len(docs), shots, values, errors, task.chance,
                        seconds=time.perf_counter() - start, size=str(task.metadata.get("size", "")))
    if task.chance is not None:
        for name in items:
            if HIGHER_IS_BETTER.get(name) and task.chance < 1:
                low, high = M.interval95(values[name], errors[name])
                result.centred[name] = {"score": M.centred(values[name], task.chance),
                                        "low": M.centred(low, task.chance), "high": M.centred(high, task.chance)}
    return result


def _score(scorer: Scorer, task: Task, docs: list[dict], examples: list[dict]):
    """Per-item scores {metric: [one per doc]} and corpus sums {metric: (logprobs, units, statistic)}."""
    contexts = [task.context(doc, examples) for doc in docs]
    wanted = list(dict.fromkeys(task.metrics))  # in the task file's order
    if task.output_type == "multiple_choice":
        choices = [task.choices(doc) for doc in docs]
        delimiter = task.target_delimiter
        requests = [(ctx, delimiter + c) for ctx, options in zip(contexts, choices, strict=True) for c in options]
        mutual = "acc_mutual_info" in wanted
        if mutual:
            requests += [("", delimiter + c) for options in choices for c in options]
        results = scorer.loglikelihood(requests)
        conditional, unconditional = results[:sum(map(len, choices))], results[sum(map(len, choices)):]
        items: dict[str, list[float]] = {name: [] for name in wanted}
        at = 0
        for doc, options in zip(docs, choices, strict=True):
            lls = [ll for ll, _ in conditional[at:at + len(options)]]
            uncond = [ll for ll, _ in unconditional[at:at + len(options)]] if mutual else None
            at += len(options)
            scores = M.multiple_choice(lls, options, task.target(doc), uncond)
            for name in wanted:
                items[name].append(scores[name])
        return items, {}
    if task.output_type == "loglikelihood":
        results = scorer.loglikelihood([(ctx, task.target(doc)) for ctx, doc in zip(contexts, docs, strict=True)])
        items = {"acc": [float(greedy) for _, greedy in results]} if "acc" in wanted else {}
        corpus = {}
        if "perplexity" in wanted:  # lm-eval: exp(−mean log-likelihood per item)
            corpus["perplexity"] = ([ll for ll, _ in results], [1] * len(results), M.weighted_perplexity)
        return items, corpus
    if task.output_type == "loglikelihood_rolling":
        texts = [task.target(doc) for doc in docs]
        logprobs = scorer.loglikelihood_rolling(texts)
        byte_counts = [len(t.encode("utf-8")) for t in texts]
        corpus = {"bits_per_char": (logprobs, [len(t) for t in texts], M.bits_per_unit)}
        if "bits_per_byte" in wanted:
            corpus["bits_per_byte"] = (logprobs, byte_counts, M.bits_per_unit)
        if "byte_perplexity" in wanted:
            corpus["byte_perplexity"] = (logprobs, byte_counts, M.weighted_perplexity)
        if "word_perplexity" in wanted:
            corpus["word_perplexity"] = (logprobs, [len(re.split(r"\s+", t)) for t in texts], M.weighted_perplexity)
        return {}, corpus
    kwargs = task.generation_kwargs
    until = kwargs.get("until", [task.fewshot_delimiter])
    request = {"until": tuple([until] if isinstance(until, str) else until),
               "max_tokens": int(kwargs.get("max_gen_toks", 256))}
    outputs = scorer.generate_until([Generation(ctx, **request) for ctx in contexts])
    items = {}
    for doc, output in zip(docs, outputs, strict=True):
        if task.process_results is not None:
            scores = task.process_results(doc, [output])
        else:
            options = {k: v for spec in task.metric_list if spec["metric"] == "exact_match"
                       for k, v in spec.items() if k in ("ignore_case", "ignore_punctuation", "regexes_to_ignore")}
            scores = {"exact_match": M.exact_match(output, str(task.target(doc)), **options)}
        for name, score in scores.items():
            items.setdefault(name, []).append(float(score))
    return items, {}


def format_value(value: float, stderr: float | None) -> str:
    if stderr is None or math.isnan(stderr):
        return f"{value:.4f}"
    return f"{value:.4f} ± {stderr:.4f}"


EVAL_FILE = "eval.json"


def evaluate_models(models: list[str], tasks: list[str], *, shots: int | None = None, limit: int | None = None,
                    batch_size: int = 8, dtype: str = "float32", max_length: int | None = None) -> list[dict]:
    """Every task on every model; each model's results are also merged into `eval.json` in its directory
    (by task name, so later runs add tasks), when that directory can be written."""
    from lm2llm.evaluate.loading import load_scorer, model_dir
    from lm2llm.evaluate.tasks import find_task

    loaded = [find_task(name) for name in tasks]  # a bad task fails before any model is loaded
    results = []
    for model in models:
        scorer = load_scorer(model, dtype=dtype, batch_size=batch_size, max_length=max_length)
        ours = [asdict(run_task(scorer, task, shots=shots, limit=limit)) for task in loaded]
        results += ours
        path = model_dir(model) / EVAL_FILE
        if os.access(path.parent, os.W_OK):
            earlier = read_json(path) if path.is_file() else {}
            atomic_write_json(path, {**earlier, **{r["task"]: r for r in ours}})
    return results
