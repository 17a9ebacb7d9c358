"""The safety filter: lexicon rules, scores against scikit-learn, the error split by target group, the
guard around a real tiny run (generate, chat, serve), and the BERT classifier on Korean hate speech."""

from __future__ import annotations

import json

import httpx
import pytest
from sklearn.metrics import precision_score, recall_score

from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.safety.classifier import LexiconClassifier
from lm2llm.safety.data import SafetySet, hate_speech, shipped_set, split_hate_speech
from lm2llm.safety.evaluate import error_split, evaluate_filter
from lm2llm.safety.guard import FILTERED, Guard, GuardedGenerator, SafetyMiddleware, filter_answer
from lm2llm.serve.app import ServedModel, ServerThread, create_app
from lm2llm.serve.demo import save_demo_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXTS = ["안녕하세요 반갑습니다. 오늘 날씨가 좋네요!", "The quick brown fox jumps over the lazy dog."] * 10
GREEDY = SamplingConfig(max_new_tokens=6, temperature=0.0)
KEY = "k"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return save_demo_run(tmp_path_factory.mktemp("safety") / "tiny", TEXTS, vocab_size=300, context_length=64,
                         n_layer=1, d_model=32, n_head=2)


def everything_lexicon() -> LexiconClassifier:
    """A lexicon listing every character of the demo texts and the replacement character (an untrained model
    writes byte pieces): whatever the tiny model writes is flagged."""
    return LexiconClassifier({"terms": {"ko": {"test": sorted(set("".join(TEXTS)) - {" "} | {"\ufffd"})}}, "allow": []})


@pytest.mark.parametrize(("text", "flagged"), [
    ("You are a worthless idiot.", True), ("시발 진짜", True), ("ㅂㅅ같은 소리", True), ("저런 한남충", True),
    ("Kill the process.", False), ("The class inherits.", False), ("서울역이 시발점이다.", False),
    ("시간이 충분하다.", False), ("충격적인 결말", False), ("Scunthorpe United", False)])
def test_lexicon_flags_insults_and_passes_look_alikes(text, flagged):
    verdict = LexiconClassifier().check([text])[0]
    assert verdict.flagged is flagged, verdict.reasons


def test_filter_scores_equal_scikit_learn_on_our_lines():
    data = shipped_set()
    score, flagged = evaluate_filter(LexiconClassifier(), data)
    assert score.recall.value == pytest.approx(recall_score(data.unsafe, flagged))
    assert score.precision.value == pytest.approx(precision_score(data.unsafe, flagged))
    assert score.false_positive_rate.value == pytest.approx(1 - recall_score(data.unsafe, flagged, pos_label=False))
    assert score.recall.interval[0] < score.recall.value < score.recall.interval[1]
    assert score.unsafe_share == 0.5 and {"en", "ko"} == set(data.groups)


def test_error_split_counts_misses_and_false_alarms_per_group():
    data = SafetySet(["a", "b", "c", "d", "e"], [True, True, False, True, False], ["g", "g", "g", "h", "h"])
    split = error_split(data, [True, False, True, False, False])
    assert split["g"]["missed"]["hits"] == 1 and split["g"]["missed"]["n"] == 2
    assert split["g"]["false_alarms"]["hits"] == 1 and split["h"]["false_alarms"]["n"] == 1
    assert split["h"]["missed"]["value"] == 1.0


def test_guarded_generator_refuses_flagged_prompts_and_withholds_flagged_answers(run_dir):
    generator = TextGenerator.from_run(run_dir)
    plain = generator.generate(["안녕하세요", "The quick"], GREEDY)
    refused, allowed = GuardedGenerator(generator, Guard(LexiconClassifier())).generate(["시발 뭐야", "The quick"], GREEDY)
    assert refused.finish_reason == FILTERED and "refused" in refused.text and refused.token_ids == []
    assert allowed.text == plain[1].text  # an unflagged answer passes untouched
    assert plain[0].text.strip(), "precondition: the tiny model writes something"
    withheld = GuardedGenerator(generator, Guard(everything_lexicon())).generate(["123"], GREEDY)[0]
    assert withheld.finish_reason == FILTERED and withheld.text.startswith("[withheld")


def test_streamed_answers_are_rewritten_per_choice():
    events = [{"choices": [{"index": 0, "delta": {"content": "시발"}, "finish_reason": None},
                           {"index": 1, "delta": {"content": "hi"}, "finish_reason": None}]},
              {"choices": [{"index": 0, "delta": {"content": " 놈"}, "finish_reason": "stop"}]}]
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    out = filter_answer(Guard(LexiconClassifier()), "/v1/chat/completions", body.encode(), streamed=True).decode()
    parsed = [json.loads(e[6:]) for e in out.split("\n\n") if e.startswith("data: {")]
    assert "시발" not in out and out.endswith("data: [DONE]\n\n")
    assert parsed[0]["choices"][0]["delta"]["content"].startswith("[withheld")
    assert parsed[0]["choices"][1]["delta"]["content"] == "hi"
    assert parsed[1]["choices"][0] == {"index": 0, "delta": {"content": ""}, "finish_reason": FILTERED}


def test_served_filter_refuses_after_the_key_check_and_withholds_answers(run_dir):
    served = ServedModel.from_run(run_dir, max_batch=4, max_waiting=16)
    for classifier, expect in ((LexiconClassifier(), "refused"), (everything_lexicon(), "withheld")):
        app = SafetyMiddleware(create_app(served, api_key=KEY), Guard(classifier))
        with ServerThread(app) as server:
            chat = {"model": served.model_id, "max_tokens": 4, "temperature": 0,
                    "messages": [{"role": "user", "content": "시발 123" if expect == "refused" else "123"}]}
            no_key = httpx.post(server.url + "/v1/chat/completions", json=chat, timeout=60)
            assert no_key.status_code == 401  # the filter says nothing to a client without the key
            answer = httpx.post(server.url + "/v1/chat/completions", json=chat, timeout=60,
                                headers={"Authorization": f"Bearer {KEY}"})
            if expect == "refused":
                assert answer.status_code == 400 and answer.json()["error"]["code"] == FILTERED
            else:
                choice = answer.json()["choices"][0]
                assert choice["finish_reason"] == FILTERED and choice["message"]["content"].startswith("[withheld")
            assert httpx.get(server.url + "/health", timeout=10).status_code == 200


def test_hate_speech_split_and_error_split_by_bias_label(shared_data):
    data = hate_speech(shared_data)
    assert len(data) == 471 and set(data.groups) == {"gender", "others", "none"}
    train, test = split_hate_speech(data, 0.3, seed=0)
    assert (len(train), len(test)) == (330, 141)
    assert abs(sum(test.unsafe) / len(test) - sum(data.unsafe) / len(data)) < 0.02  # stratified
    score, flagged = evaluate_filter(LexiconClassifier(), test)
    split = error_split(test, flagged)
    assert sum(s["lines"] for s in split.values()) == len(test)
    assert score.precision.value > score.unsafe_share  # the rules are precise, if they catch little


def test_safety_train_writes_a_filter_run_with_lineage(shared_data, tmp_path, cli):
    result = cli("safety", "train", "--data-dir", shared_data, "--out", tmp_path / "safety", "--steps", "2", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert set(report["filters"]) == {"model:safety", "rules"} and report["held_out_lines"] == 141
    lineage = json.loads((tmp_path / "safety" / "lineage.json").read_text())
    assert lineage["data"][0]["licence"].startswith("Attribution-ShareAlike 4.0")
    assert "kocohub/korean-hate-speech" in lineage["data"][0]["provenance"]
    checked = cli("safety", "check", "시발", "--filter", tmp_path / "safety", "--json")
    assert checked.code == 0 and json.loads(checked.out)[0]["score"] >= 0
