"""Evaluation: lm-eval's rolling windows, batch invariance, n-gram requests, metrics, task files, the CLI."""

from __future__ import annotations

import json
import math

import pytest

from lm2llm.errors import UserError
from lm2llm.evaluate import Generation, find_task, load_scorer, load_stdlib_qa, load_task, run_task, shipped_task_table
from lm2llm.evaluate import metrics as M
from lm2llm.evaluate.ngram_scorer import NgramScorer
from lm2llm.evaluate.windows import llama_cpp_chunks, nanochat_rows, rolling_windows
from lm2llm.inference import SamplingConfig
from lm2llm.serve.demo import save_demo_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXTS = ["The quick brown fox jumps over the lazy dog. Python is a programming language.",
         "안녕하세요 반갑습니다. 오늘 날씨가 좋네요! 한국어 문장을 만듭니다.",
         "Return the number of items in a container. The argument may be a sequence."] * 8


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return save_demo_run(tmp_path_factory.mktemp("eval") / "tiny", TEXTS, vocab_size=400, context_length=96,
                         n_layer=2, d_model=48, n_head=4)


@pytest.mark.parametrize("length", [0, 1, 5, 16, 17, 40, 97])
@pytest.mark.parametrize("max_length", [1, 4, 16])
def test_rolling_windows_equal_lm_eval(length, max_length):
    lm_eval_utils = pytest.importorskip("lm_eval.utils")
    tokens = list(range(100, 100 + length))
    theirs = [lm_eval_utils.make_disjoint_window(w) for w in
              lm_eval_utils.get_rolling_token_windows(tokens, prefix_token=7, max_seq_len=max_length, context_len=1)]
    ours = rolling_windows(tokens, 7, max_length)
    assert ours == [(list(a), list(b)) for a, b in theirs]
    assert [t for _, cont in ours for t in cont] == tokens  # every token scored once


def test_llama_cpp_and_nanochat_cut_as_documented():
    chunks = llama_cpp_chunks(list(range(10, 30)), n_ctx=8, bos=1)
    assert [c[0] for c, _ in chunks] == [1, 1] and len(chunks) == 2 and chunks[0][1] == 4  # tail of 4 dropped
    rows = nanochat_rows([[5, 6, 7], [8, 9]], bos=1, row_length=3)
    assert rows == [[1, 5, 6, 7]]  # [1 5 6 7 | 1 8 9]: the second row is incomplete


def test_batch_size_1_and_8_give_identical_loglikelihoods_in_fp32(run_dir):
    task = find_task("python-cloze")
    requests = [(d["context"], " " + c) for d in task.docs()[:10] for c in d["choices"]]
    texts = [d["text"] for d in find_task("pydocs-bpb").docs()[:6]]
    one, eight = load_scorer(str(run_dir), batch_size=1), load_scorer(str(run_dir), batch_size=8)
    assert one.loglikelihood(requests) == eight.loglikelihood(requests)
    assert one.loglikelihood_rolling(texts) == eight.loglikelihood_rolling(texts)


def test_rolling_equals_one_window_and_greedy_tokens_are_flagged_greedy(run_dir):
    scorer = load_scorer(str(run_dir))
    (whole,) = scorer.loglikelihood_rolling([TEXTS[0]])
    (ll, _), = scorer.loglikelihood([("", TEXTS[0])])
    assert ll == pytest.approx(whole, abs=1e-4)  # a text shorter than the context: one window
    prompt = scorer.tokenizer.encode("Python is")
    completion = scorer.generator.generate([prompt], SamplingConfig(temperature=0, max_new_tokens=6))[0]
    assert scorer.score_tokens([(prompt, completion.token_ids)])[0][1]
    assert scorer.generate_until([Generation("Python is", (), 6)]) == [completion.text]


def test_ngram_requests_match_its_own_sentence_scores(tmp_path):
    from lm2llm.ngram import NgramConfig, sentence_scores, train

    lines = ["the cat sat on the mat", "the dog sat on the log", "a cat saw a dog"] * 3
    model = train(lines, NgramConfig(order=3, discount_fallback=True))
    scorer = NgramScorer(model)
    (rolling,) = scorer.loglikelihood_rolling(["the cat sat on the log"])
    assert rolling == pytest.approx(float(sentence_scores(model, ["the cat sat on the log"])[0]) * math.log(10))
    (head, _), (tail, greedy) = scorer.loglikelihood([("", "the cat sat"), ("the cat sat", " on the mat")])
    end = float(model.lm.next_log10_probs([1, *[model.vocab.index[w] for w in "the cat sat on the mat".split()]])[2])
    assert head + tail + end * math.log(10) == pytest.approx(float(sentence_scores(model, [lines[0]])[0]) * math.log(10))
    assert greedy  # "on the mat" is the most likely path after "cat sat"... in this corpus
    result = run_task(scorer, find_task("python-cloze"), limit=8)
    assert 0 <= result.metrics["acc"] <= 1


def test_metrics_as_lm_eval_and_squad_define_them():
    scores = M.multiple_choice([-4.0, -6.0], ["ab", "abcdef"], gold=1)
    assert scores == {"acc": 0.0, "acc_norm": 1.0}  # -6/6 > -4/2
    assert M.mean_stderr([1, 0, 1, 1]) == pytest.approx(0.25)
    assert M.bits_per_unit([-math.log(2) * 8], [8]) == pytest.approx(1.0)
    assert M.f1("the json.loads function", "json.loads") == pytest.approx(2 / 3)
    assert M.exact_match(" 42", "42", regexes_to_ignore=[r"^\s+"]) == 1.0
    assert M.centred(0.625, 0.25) == pytest.approx(0.5)


def test_shipped_tasks_state_size_and_chance():
    rows = {r["task"]: r for r in shipped_task_table()}
    assert {"pydocs-bpb", "pycode-bpb", "korean-law-bpb", "python-cloze", "instructions", "stdlib-qa"} <= set(rows)
    assert all(r["chance"] is not None and r["size"] for r in rows.values())
    assert rows["python-cloze"]["chance"] == 0.25 and rows["python-cloze"]["documents"] == 200
    qa = load_stdlib_qa()
    assert len(qa) == 35 and all(item.source.startswith("https://docs.python.org/3/library/") for item in qa)


@pytest.mark.parametrize("text, line, message", [
    ("task: x\noutput_type: multiple_choice\n  bad: [\n", 3, "not valid YAML"),
    ("task: x\noutput_type: guess\ndataset_kwargs: {data_files: {test: d.jsonl}}\ntest_split: test\n", 2,
     "output_type must be"),
    ("task: x\noutput_type: multiple_choice\ndataset_kwargs: {data_files: {test: d.jsonl}}\ntest_split: test\n"
     "colour: red\n", 5, "unknown key"),
    ("task: x\noutput_type: generate_until\ndataset_kwargs: {data_files: {test: missing.jsonl}}\n"
     "test_split: test\n", 3, "not found"),
])
def test_bad_task_files_name_file_and_line(tmp_path, text, line, message):
    (tmp_path / "d.jsonl").write_text('{"text": "a"}\n', encoding="utf-8")
    path = tmp_path / "task.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UserError) as error:
        load_task(path)
    assert f"{path}:{line}" in str(error.value) and message in str(error.value)


def test_bad_data_line_is_named(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "a"}\n{"text": \n', encoding="utf-8")
    path = tmp_path / "task.yaml"
    path.write_text("task: x\noutput_type: loglikelihood_rolling\ndataset_kwargs: {data_files: {test: d.jsonl}}\n"
                    "test_split: test\ndoc_to_target: text\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"d\.jsonl:2"):
        load_task(path).docs()


def test_eval_cli_prints_scores_and_writes_eval_json(cli, run_dir):
    result = cli("eval", run_dir, "--task", "python-cloze", "--task", "pydocs-bpb", "--limit", "6", "--json")
    assert result.code == 0, result.err
    rows = {r["task"]: r for r in json.loads(result.out)["results"]}
    assert set(rows["python-cloze"]["stderr"]) == {"acc", "acc_norm"} and rows["pydocs-bpb"]["metrics"]["bits_per_byte"] > 0
    saved = json.loads((run_dir / "eval.json").read_text())
    assert saved["python-cloze"]["metrics"] == rows["python-cloze"]["metrics"]
    bad = cli("eval", run_dir, "--task", "no-such-task")
    assert bad.code == 2 and "unknown task" in bad.err
