"""The real lm-evaluation-harness, through our `LM2LLM` model class, gives the numbers our harness gives."""

from __future__ import annotations

import pytest

from lm2llm.evaluate import find_task, run_task
from lm2llm.serve.demo import save_demo_run

lm_eval = pytest.importorskip("lm_eval")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
TASKS = ["python-cloze", "pydocs-bpb", "korean-law-bpb", "stdlib-qa", "instructions"]


@pytest.fixture(scope="module")
def lm_eval_results(tmp_path_factory):
    from lm_eval.tasks import TaskManager

    from lm2llm.evaluate.harness import LM2LLM, lm_eval_task_dir

    root = tmp_path_factory.mktemp("lm-eval")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_DATASETS_CACHE", str(root / "hf-cache"))
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        run = save_demo_run(root / "tiny", ["Python is a programming language. 안녕하세요 반갑습니다."] * 8,
                            vocab_size=350, context_length=128, n_layer=2, d_model=48, n_head=4)
        model = LM2LLM(run=str(run), batch_size=4)
        manager = TaskManager(include_path=str(lm_eval_task_dir(root / "tasks")), include_defaults=False)
        results = lm_eval.simple_evaluate(model=model, tasks=TASKS, num_fewshot=1, limit=8, task_manager=manager,
                                          bootstrap_iters=10, log_samples=True)
    return model, results


@pytest.mark.parametrize("task", TASKS)
def test_lm_eval_and_our_harness_give_identical_numbers(lm_eval_results, task):
    model, results = lm_eval_results
    definition = find_task(task)
    shots = 0 if definition.output_type == "loglikelihood_rolling" else 1  # lm-eval never gives shots there
    ours = run_task(model.scorer, definition, shots=shots, limit=8)
    theirs = results["results"][task]
    assert set(ours.metrics) >= set(definition.metrics)
    for metric in definition.metrics:
        assert ours.metrics[metric] == theirs[f"{metric},none"], metric
        if definition.output_type in ("multiple_choice", "generate_until"):
            assert ours.stderr[metric] == pytest.approx(theirs[f"{metric}_stderr,none"], abs=1e-12)
    docs = definition.docs()[:8]
    examples = definition.fewshot_docs(shots)
    for sample in results["samples"][task]:  # the very prompts lm-eval built are ours
        context = sample["arguments"][0][0]
        assert context == definition.context(docs[sample["doc_id"]], examples) or definition.output_type == \
            "loglikelihood_rolling"
