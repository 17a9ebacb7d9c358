"""`lm2llm generate` and `lm2llm chat` on real tiny run directories (char and BPE tokenizers), in Korean."""

from __future__ import annotations

import io
import json

import pytest
import torch

from lm2llm.inference.chat import ChatSession
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.models import build_model, save_model
from lm2llm.tokenizer import BPETokenizer, CharTokenizer

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
    assert streamed.out == whole.out and streamed.out.startswith("오늘")


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
    (("--device", "gpu"), "--device"),
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


QUESTION, ANSWER = "안녕하세요", "반갑습니다. 저는 한국어 모델입니다!"


@pytest.fixture(scope="module")
def chat_run(tmp_path_factory):
    """A BPE run whose tiny model has really learned one exchange (a plain training loop to ~zero loss).

    The vocabulary is so small that Hangul syllables span several byte tokens: the streaming test needs that.
    """
    tokenizer = BPETokenizer.train([QUESTION, ANSWER, "한국어 문장과 모델, 안녕히 가세요."], vocab_size=300)
    ids, _ = tokenizer.render_chat([{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}])
    torch.manual_seed(0)
    model = build_model("gpt", vocab_size=tokenizer.vocab_size, n_layer=1, d_model=48, n_head=4, context_length=96)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sequence = torch.tensor([ids])
    for _ in range(150):
        _, loss = model(sequence[:, :-1], sequence[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    run = tmp_path_factory.mktemp("chat") / "run"
    save_model(model, run)
    tokenizer.save(run)
    return run


def test_streamed_korean_never_shows_a_broken_character(chat_run):
    generator = TextGenerator.from_run(chat_run)
    tokenizer = generator.tokenizer
    prompt, _ = tokenizer.render_chat([{"role": "user", "content": QUESTION}], add_generation_prompt=True)
    split_syllables = [t for t in tokenizer.encode(ANSWER) if not _is_whole_utf8(tokenizer.token_bytes(t))]
    assert split_syllables, "the test needs tokens that cut a character"
    chunks = list(TextGenerator(generator.model, tokenizer, end_ids=[tokenizer.end_of_turn_id]).stream(
        [prompt], SamplingConfig(temperature=0, max_new_tokens=40)))
    assert "".join(c.text for c in chunks) == ANSWER
    assert all("\ufffd" not in c.text for c in chunks)
    assert any(c.token_ids and not c.text for c in chunks)  # a token that only began a character showed nothing
    assert chunks[-1].finish_reason == "stop"


def _is_whole_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_chat_session_keeps_history_and_commands(chat_run):
    session = ChatSession(TextGenerator.from_run(chat_run))
    greedy = SamplingConfig(temperature=0, max_new_tokens=40)
    assert "".join(session.reply(QUESTION, greedy)) == ANSWER
    assert session.messages() == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]
    session.set_system("짧게 답하세요")
    assert session.messages()[0] == {"role": "system", "content": "짧게 답하세요"}
    session.reset()
    assert session.messages() == [{"role": "system", "content": "짧게 답하세요"}]


def test_chat_drops_the_oldest_exchanges_when_the_context_is_full(chat_run):
    session = ChatSession(TextGenerator.from_run(chat_run))
    greedy = SamplingConfig(temperature=0, max_new_tokens=8)
    for _ in range(10):
        list(session.reply(QUESTION, greedy))
    ids, _ = session.tokenizer.render_chat(session.messages())
    assert len(ids) <= 96 and len(session.history) < 20
    assert [m["role"] for m in session.history] == ["user", "assistant"] * (len(session.history) // 2)


def test_chat_command_in_the_terminal(cli, chat_run, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{QUESTION}\n/reset\n{QUESTION}\n/system 친절하게\n/quit\n"))
    result = cli("chat", chat_run, "--temperature", "0", "-n", "40")
    assert result.code == 0, result.err
    assert result.out.count(ANSWER) == 2
    assert "system prompt: 친절하게" in result.err and "conversation cleared" in result.err


@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_bfloat16_decoding_follows_float32(tmp_path, cli, family):
    """Weights and KV cache in bf16 (RoPE included) decode the same greedy text as fp32 on a Korean prompt."""
    tokenizer = CharTokenizer.train([KOREAN])
    torch.manual_seed(0)
    model = build_model(family, f"{family}-tiny", vocab_size=tokenizer.vocab_size)
    save_model(model, tmp_path / "run")
    tokenizer.save(tmp_path / "run")
    args = ("generate", tmp_path / "run", "--prompt", "오늘 날씨", "-n", "6", "--temperature", "0", "--json")
    fp32, bf16 = cli(*args), cli(*args, "--dtype", "bfloat16")
    assert fp32.code == 0 and bf16.code == 0, bf16.err
    ids = [json.loads(r.out)["completions"][0]["token_ids"] for r in (fp32, bf16)]
    assert len(ids[1]) == 6 and ids[0][:2] == ids[1][:2]  # rounding may change a later near-tie
    wrong = cli(*args, "--dtype", "int8")
    assert wrong.code == 2 and "--dtype" in wrong.err
