"""Evaluation (guide §9.1): lm-evaluation-harness's request kinds and metrics, offline tasks, model selection.

- `requests` — the three request kinds (`loglikelihood`, `loglikelihood_rolling`, `generate_until`) and
  the `Scorer` interface; `scorer` answers them for neural runs (batched by length), `ngram_scorer` for
  n-gram models; `loading.load_scorer(model)` picks one.
- `windows` — how long text is cut for perplexity: lm-eval's rolling windows, llama.cpp's chunks,
  nanochat's rows; `protocols` computes the three side by side.
- `metrics` — acc, acc_norm, exact match, F1, perplexity, bits per byte/char, stderr, chance centring.
- `tasks` — task YAMLs in lm-eval's schema (shipped in `task_files/`); `runner.run_task` scores one.
- `harness` — `LM2LLM`, the model class for the real `lm_eval` (imports lm_eval: load it explicitly).
- `stdlib_qa` — the hand-made Python standard-library QA set (`load_stdlib_qa`), also used for RAG.
- `selection` — `lm2llm select`: quality, latency, throughput, memory, size and cost side by side.
"""

from lm2llm.evaluate.loading import load_scorer
from lm2llm.evaluate.requests import Generation, Scorer
from lm2llm.evaluate.runner import TaskResult, evaluate_models, run_task
from lm2llm.evaluate.stdlib_qa import QAItem, load_stdlib_qa
from lm2llm.evaluate.tasks import Task, find_task, load_task, shipped_task_table, shipped_tasks

__all__ = ["Generation", "QAItem", "Scorer", "Task", "TaskResult", "evaluate_models", "find_task", "load_scorer",
           "load_stdlib_qa", "load_task", "run_task", "shipped_task_table", "shipped_tasks"]
