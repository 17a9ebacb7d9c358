"""Pinned outputs of every generation path: the same seed gives the same tokens and text, release after release.

The expected values in `fixtures/generation_pins.json` were recorded from the code before the decode paths
were merged into one engine (two loops then: `DecodeBatch` for generate/chat and `BatchScheduler` for
serve), so a refactor that changes what any path samples fails here. Record again only for a deliberate
change of behaviour: `LM2LLM_RECORD_PINS=1 pytest tests/test_generation_pins.py`.
"""

from __future__ import annotations

import json
import os
import queue
from pathlib import Path

import pytest
import torch

from lm2llm.inference.chat import ChatSession
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.inference.text import TextGenerator
from lm2llm.models import build_model
from lm2llm.serve.scheduler import BatchScheduler, SequenceRequest
from lm2llm.tokenizer import BPETokenizer, CharTokenizer

PINS = Path(__file__).parent / "fixtures" / "generation_pins.json"
RECORD = os.environ.get("LM2LLM_RECORD_PINS") == "1"
pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB = 61
PROMPTS = [[5, 9, 2], [7, 1, 4, 4, 8, 3, 2, 9], [11], [3] * 20]
MODELS = {
    "gpt": dict(family="gpt", preset="gpt-tiny"),
    "llama": dict(family="llama", preset="llama-tiny"),
    "lstm": dict(family="lstm", d_embed=16, d_hidden=24, n_layer=2),
}
SETTINGS = {
    "greedy": dict(temperature=0, max_new_tokens=10),
    "sampled": dict(temperature=0.9, top_k=20, top_p=0.9, seed=7, max_new_tokens=14),
    "penalised": dict(temperature=1.1, min_p=0.02, repetition_penalty=1.3, frequency_penalty=0.4,
                      presence_penalty=0.2, seed=11, max_new_tokens=16),
    "logprobs": dict(temperature=0.8, seed=3, max_new_tokens=6, logprobs=True, top_logprobs=2),
}
KOREAN = "안녕하세요 반갑습니다. 오늘 날씨가 좋네요! 한국어 문장을 만듭니다."


def make_model(name: str, vocab: int = VOCAB) -> torch.nn.Module:
    torch.manual_seed(0)
    spec = dict(MODELS[name])
    return build_model(spec.pop("family"), spec.pop("preset", None), vocab_size=vocab, **spec).eval()


def rounded(values: list[float]) -> list[float]:
    return [round(v, 4) for v in values]


def outputs() -> dict:
    """What every path produces today, as plain JSON."""
    out: dict = {}
    for name in MODELS:
        model = make_model(name)
        for setting, kwargs in SETTINGS.items():
            completions = generate_ids(model, PROMPTS, SamplingConfig(**kwargs), end_ids=[13])
            out[f"generate_ids/{name}/{setting}"] = [
                {"tokens": c.token_ids, "finish": c.finish_reason, "logprobs": rounded(c.logprobs),
                 "top": [sorted(rounded(list(t.values()))) for t in c.top_logprobs]} for c in completions]
        out[f"scheduler/{name}"] = scheduled(model)
    tokenizer = CharTokenizer.train([KOREAN])
    generator = TextGenerator(make_model("gpt", tokenizer.vocab_size), tokenizer)
    prompts = ["안녕하세요", "오늘 날씨", "한"]
    for setting, kwargs in {"sampled": dict(temperature=0.8, seed=3, max_new_tokens=20),
                            "stops": dict(temperature=1.0, seed=5, max_new_tokens=30, stop=("요", "다.")),
                            "greedy": dict(temperature=0, max_new_tokens=12)}.items():
        config = SamplingConfig(**kwargs)
        out[f"text/{setting}"] = [{"text": c.text, "tokens": c.token_ids, "finish": c.finish_reason}
                                  for c in generator.generate(prompts, config)]
        rows: dict[str, list] = {}
        for chunk in generator.stream(prompts, config):
            rows.setdefault(str(chunk.index), []).append([chunk.text, chunk.token_ids, chunk.finish_reason])
        out[f"stream/{setting}"] = rows
    out["chat"] = chatted()
    return out


def scheduled(model: torch.nn.Module) -> list:
    """Sequences with their own settings and seeds, joining and leaving a batch of at most 3 rows."""
    scheduler = BatchScheduler(model, HangulIds(), max_batch=3)
    scheduler.start()
    out: queue.Queue = queue.Queue()  # every sequence's chunks, in the order the scheduler thread made them
    prompts = PROMPTS + PROMPTS[:2]
    try:
        for index, prompt in enumerate(prompts):
            kwargs = list(SETTINGS.values())[index % len(SETTINGS)]
            config = SamplingConfig(**{**kwargs, "logprobs": False, "top_logprobs": 0})
            scheduler.submit([SequenceRequest(prompt, config, out.put, end_ids=(13,), index=index)])
        results = [{"tokens": [], "text": "", "finish": None} for _ in prompts]
        while any(r["finish"] is None for r in results):
            chunk = out.get(timeout=30)
            result = results[chunk.index]
            result["tokens"] += chunk.token_ids
            result["text"] += chunk.text
            result["finish"] = chunk.finish_reason
        return results
    finally:
        scheduler.stop()


def chatted() -> list:
    """Two turns of a chat session on an untrained model with a chat template (sampled, seeded)."""
    tokenizer = BPETokenizer.train([KOREAN, "Python is a programming language."] * 3, vocab_size=300)
    session = ChatSession(TextGenerator(make_model("llama", tokenizer.vocab_size), tokenizer), system="짧게")
    config = SamplingConfig(temperature=1.0, seed=9, max_new_tokens=15)
    return [list(session.reply(text, config)) for text in ("안녕하세요", "날씨는?")]


class HangulIds:
    """Token i is the Hangul syllable U+AC00 + i (what the scheduler decodes with)."""

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(0xAC00 + i) for i in ids)


def test_every_generation_path_gives_its_pinned_output():
    got = json.loads(json.dumps(outputs()))  # tuples to lists, as stored
    if RECORD:
        PINS.write_text(json.dumps(got, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    expected = json.loads(PINS.read_text(encoding="utf-8"))
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == expected[key], key
