"""`lm2llm generate` and `lm2llm chat` on a real (untrained, tiny) run directory with Korean text."""

from __future__ import annotations

import io
import json

import pytest
import torch

from lm2llm.models import build_model, save_model
from lm2llm.tokenizer import CharTokenizer

KOREAN = "안녕하세요 반갑습니다. 오늘 날씨가 좋네요! 한국어 문장을 만듭니다."


@pytest.fixture
def char_run(tmp_path):
    """A run directory as the trainer writes it: the model files plus the tokenizer files."""
    tokenizer = CharTokenizer.train([KOREAN])
    torch.manual_seed(0)
    model = build_model("gpt", "gpt-tiny", vocab_size=tokenizer.vocab_size)
    save_model(model, tmp_path / "run")
    tokenizer.save(tmp_path / "run")
    return tmp_path / "run"


def test_generate_json_is_reproducible_with_a_seed(cli, char_run):
    args = ("generate", char_run, "--prompt", "안녕", "-n", "12", "--seed", "4", "--top-k", "10", "--json")
    first, second = cli(*args), cli(*args)
    assert first.code == 0, first.err
    result = json.loads(first.out)
    completion = result["completions"][0]
    assert len(completion["token_ids"]) == 12 and completion["finish_reason"] == "length"
    assert result == {**json.loads(second.out), "seconds": result["seconds"],
                      "tokens_per_second": result["tokens_per_second"]}


def test_stream_prints_the_same_text_as_generate(cli, char_run):
    common = ("--prompt", "오늘", "-n", "15", "--seed", "2", "--temperature", "0.8")
    streamed = cli("generate", char_run, *common, "--stream")
    whole = cli("generate", char_run, *common)
    assert streamed.code == 0 and whole.code == 0
    assert streamed.out.rstrip("\n") == whole.out.rstrip("\n")[len("오늘"):]


def test_a_batch_of_prompts_with_logprobs(cli, char_run):
    result = cli("generate", char_run, "-p", "안녕", "-p", "한국어 문장", "-n", "5", "--logprobs", "3",
                 "--temperature", "0", "--json")
    assert result.code == 0, result.err
    completions = json.loads(result.out)["completions"]
    assert [c["prompt"] for c in completions] == ["안녕", "한국어 문장"]
    assert all(len(c["logprobs"]) == 5 and len(c["top_logprobs"][0]) == 3 for c in completions)


@pytest.mark.parametrize("args,message", [
    (("--temperature", "-1"), "temperature"),
    (("--top-p", "0"), "top_p"),
    (("-p", "둘째", "--stream"), "--stream"),
])
def test_bad_flags_are_one_line_errors(cli, char_run, args, message):
    result = cli("generate", char_run, "-p", "안녕", *args)
    assert result.code == 2 and message in result.err and "Traceback" not in result.err


def test_a_folder_without_a_model_is_a_clear_error(cli, tmp_path):
    result = cli("generate", tmp_path, "-p", "안녕")
    assert result.code == 2 and "model_config.json" in result.err


def test_chat_needs_a_chat_template(cli, char_run, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("안녕\n"))
    result = cli("chat", char_run)
    assert result.code == 2 and "chat template" in result.err
