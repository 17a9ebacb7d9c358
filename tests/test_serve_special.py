"""The server's text leaves special tokens out by default, as vLLM's `skip_special_tokens`; the request field
`skip_special_tokens: false` keeps them; streaming and whole answers agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from lm2llm.models import build_model, save_model
from lm2llm.serve.app import ServedModel, create_app
from lm2llm.tokenizer import BPETokenizer
from lm2llm.tokenizer.chat import MASK_TOKEN

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXTS = ["안녕하세요 반갑습니다. 오늘 날씨가 좋네요!", "The quick brown fox jumps over the lazy dog."] * 5
SEEN = "<|mask|>"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A tiny GPT whose every next token is <|mask|>: a special token that ends neither a completion nor a
    chat answer. Its final norm outputs a constant vector, the embedding of <|mask|> scaled up, so greedy
    decoding picks <|mask|> at every step."""
    run = Path(tmp_path_factory.mktemp("special"))
    tokenizer = BPETokenizer.train(TEXTS, 300, extra_special_tokens=[MASK_TOKEN])
    torch.manual_seed(0)
    model = build_model("gpt", vocab_size=tokenizer.vocab_size, context_length=64, n_layer=1, d_model=32, n_head=2)
    mask = tokenizer.fast.token_to_id(MASK_TOKEN)
    with torch.no_grad():
        direction = torch.randn(32)
        model.tok_emb.weight[mask] = 3 * direction / direction.norm()
        model.norm_f.weight.zero_()
        model.norm_f.bias.copy_(model.tok_emb.weight[mask])
    save_model(model, run)
    tokenizer.save(run)
    served = ServedModel.from_run(run, max_batch=4)
    with TestClient(create_app(served, allowed_hosts=["testserver"])) as test_client:
        yield test_client


def _streamed(client: TestClient, route: str, body: dict) -> str:
    with client.stream("POST", route, json={**body, "stream": True}) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    if route.endswith("chat/completions"):
        return "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"])
    return "".join(e["choices"][0]["text"] for e in events if e["choices"])


@pytest.mark.parametrize("route", ["/v1/completions", "/v1/chat/completions"])
def test_special_tokens_are_skipped_unless_the_request_keeps_them(client, route):
    model = client.get("/v1/models").json()["data"][0]["id"]
    ask = {"prompt": "오늘 날씨"} if route == "/v1/completions" else {"messages": [{"role": "user", "content": "안녕"}]}
    body = {"model": model, "max_tokens": 4, "temperature": 0, **ask}

    def text(answer: dict) -> str:
        choice = answer["choices"][0]
        return choice["text"] if "text" in choice else choice["message"]["content"]

    default = client.post(route, json=body).json()
    kept = client.post(route, json={**body, "skip_special_tokens": False}).json()
    assert text(default) == "" and text(kept) == SEEN * 4
    assert default["usage"]["completion_tokens"] == kept["usage"]["completion_tokens"] == 4  # counted either way
    assert _streamed(client, route, body) == "" and _streamed(client, route, {**body, "skip_special_tokens": False}) == SEEN * 4
