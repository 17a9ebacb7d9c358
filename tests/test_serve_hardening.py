"""Regression tests for the server and sampler hardening of issue #20: tiny temperatures, one broken row or
receiver failing alone, the max-tokens cap, requests that can never fit, client disconnects, slow senders,
the schema behind the key, the Host allow-list, draining on shutdown; and a fuzz test of the JSON API."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch

from lm2llm.errors import UserError
from lm2llm.inference.engine import Engine, SequenceRequest
from lm2llm.inference.sampling import INVALID, Sampler, SamplingConfig, sample_rows
from lm2llm.serve.app import ServedModel, ServerThread, create_app
from lm2llm.serve.demo import save_demo_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TEXTS = ["안녕하세요 반갑습니다. 오늘 날씨가 좋네요!", "The quick brown fox jumps over the lazy dog."] * 10
KEY = "k"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return save_demo_run(tmp_path_factory.mktemp("serve") / "tiny", TEXTS, vocab_size=300, context_length=2048,
                         n_layer=1, d_model=32, n_head=4)


@pytest.fixture(scope="module")
def lstm_dir(tmp_path_factory) -> Path:
    return save_demo_run(tmp_path_factory.mktemp("serve") / "rnn", TEXTS, vocab_size=300, family="lstm",
                         d_embed=16, d_hidden=16, n_layer=1)


def endless(served: ServedModel) -> ServedModel:
    """No end token: every completion runs to its budget, so a test controls how long generation lasts."""
    served.end_ids = ()
    return served


# --- the sampler and the engine ------------------------------------------------------------------------


def test_tiny_temperatures_are_greedy_and_a_nan_row_fails_alone():
    logits = torch.randn(3, 50)
    for temperature in (1e-40, 5e-324, 1e-6):
        config = SamplingConfig(temperature=temperature, seed=0)
        assert config.greedy
        assert Sampler(config, 3, 50)(logits).tokens.tolist() == logits.argmax(-1).tolist()
    broken = logits.clone()
    broken[1, 7] = float("nan")
    samplers = [Sampler(SamplingConfig(temperature=0.8, seed=i), 1, 50) for i in range(3)]
    tokens = sample_rows(samplers, broken)
    assert tokens[1] == INVALID and INVALID not in (tokens[0], tokens[2])
    assert sample_rows([Sampler(SamplingConfig(temperature=0), 1, 50)] * 3, broken)[1] == INVALID
    with pytest.raises(ValueError, match="not finite"):
        Sampler(SamplingConfig(temperature=0.8), 3, 50)(broken)


def test_a_broken_receiver_stops_only_its_own_sequence(run_dir):
    served = ServedModel.from_run(run_dir)
    engine = Engine(served.scheduler.engine.model, served.tokenizer)
    got: list = []

    def broken(chunk) -> None:
        raise RuntimeError("the client's queue is gone")

    config = SamplingConfig(max_new_tokens=12, temperature=0)
    engine.submit([SequenceRequest([5, 6, 7], config, broken, index=0),
                   SequenceRequest([5, 6, 7], config, got.append, index=1)])
    list(engine.drain())
    assert got[-1].finish_reason in ("length", "stop") and not engine.busy


# --- the server ----------------------------------------------------------------------------------------


def test_tiny_temperatures_over_http_and_concurrent_requests_all_succeed(run_dir):
    served = ServedModel.from_run(run_dir, max_batch=8)
    body = {"model": "tiny", "prompt": "The quick", "max_tokens": 8, "seed": 1}
    with ServerThread(create_app(served)) as server:
        greedy = httpx.post(server.url + "/v1/completions", json={**body, "temperature": 0}).json()
        statuses: list[int] = []

        def send(extra: dict) -> None:
            response = httpx.post(server.url + "/v1/completions", json={**body, **extra}, timeout=60)
            statuses.append(response.status_code)
            if extra.get("temperature") == 1e-40:
                assert response.json()["choices"][0]["text"] == greedy["choices"][0]["text"]

        threads = [threading.Thread(target=send, args=(extra,)) for extra in
                   [{"temperature": 1e-40}, {"temperature": 5e-324}, {"n": 3, "temperature": 1.0}] * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 9


def test_max_tokens_cap_and_requests_that_can_never_fit(run_dir, lstm_dir):
    with pytest.raises(UserError, match="no context limit.*--max-tokens"):
        ServedModel.from_run(lstm_dir)
    rnn = endless(ServedModel.from_run(lstm_dir, max_tokens=5, max_waiting=4))
    with ServerThread(create_app(rnn)) as server:
        answer = httpx.post(server.url + "/v1/completions",
                            json={"model": "rnn", "prompt": "hi", "max_tokens": 1_000_000, "n": 2}, timeout=60).json()
        assert answer["usage"]["completion_tokens"] == 2 * 5 and answer["choices"][0]["finish_reason"] == "length"
        chat = httpx.post(server.url + "/v1/chat/completions",
                          json={"model": "rnn", "messages": [{"role": "user", "content": "hi"}]}, timeout=60).json()
        assert chat["usage"]["completion_tokens"] <= 5
        never = httpx.post(server.url + "/v1/completions", json={"model": "rnn", "prompt": "hi", "n": 5})
        assert never.status_code == 400 and never.json()["error"]["code"] == "too_many_sequences"


def test_a_client_that_disconnects_cancels_its_non_streaming_request(lstm_dir):
    served = endless(ServedModel.from_run(lstm_dir, max_tokens=1_000_000))
    with ServerThread(create_app(served)) as server:
        body = json.dumps({"model": "rnn", "prompt": "hi", "max_tokens": 1_000_000}).encode()
        with socket.create_connection((server.host, server.port)) as sock:
            sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            deadline = time.monotonic() + 30
            while served.scheduler.stats.steps < 50 and time.monotonic() < deadline:
                time.sleep(0.02)
        deadline = time.monotonic() + 10
        while served.scheduler.engine.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not served.scheduler.engine.busy
        steps = served.scheduler.stats.steps
        time.sleep(0.3)
        assert served.scheduler.stats.steps == steps < 100_000  # it stopped, long before its budget


def _raw(server, data: bytes, wait: float) -> bytes:
    with socket.create_connection((server.host, server.port)) as sock:
        sock.settimeout(wait)
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except TimeoutError:
            return b"still open"
        return received


def test_slow_senders_are_cut_off(run_dir):
    served = ServedModel.from_run(run_dir)
    with ServerThread(create_app(served, body_timeout=0.5), header_timeout=0.5) as server:
        slow_head = _raw(server, b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n", wait=5)
        assert slow_head == b""  # closed without an answer
        slow_body = _raw(server, b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{",
                         wait=5)
        assert slow_body.startswith(b"HTTP/1.1 408") and b"request_timeout" in slow_body


def test_schema_behind_the_key_and_the_host_allow_list(run_dir):
    served = ServedModel.from_run(run_dir)
    with ServerThread(create_app(served, api_key=KEY)) as server:
        assert httpx.get(server.url + "/openapi.json").status_code == 401
        assert httpx.get(server.url + "/openapi.json", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        assert httpx.get(server.url + "/docs").status_code == 404
        for host, status in [("localhost:1234", 200), ("127.0.0.1", 200), ("[::1]:80", 200),
                             ("evil.example", 400), ("localhost.evil.example:80", 400)]:
            response = httpx.get(server.url + "/health", headers={"Host": host})
            assert response.status_code == status, host
            if status == 400:
                assert response.json()["error"]["code"] == "invalid_host"
    with ServerThread(create_app(served, allowed_hosts=["*"])) as server:
        assert httpx.get(server.url + "/health", headers={"Host": "anything"}).status_code == 200
        assert httpx.get(server.url + "/openapi.json").status_code == 200  # no key: the schema is public


@pytest.mark.parametrize(("drain", "status"), [(30.0, 200), (0.3, 503)])
def test_shutdown_drains_running_requests(lstm_dir, caplog, drain, status):
    served = endless(ServedModel.from_run(lstm_dir, max_tokens=3000 if status == 200 else 1_000_000))
    results: list[httpx.Response] = []
    server = ServerThread(create_app(served), drain_seconds=drain)
    with server:
        sender = threading.Thread(target=lambda: results.append(httpx.post(
            server.url + "/v1/completions", json={"model": "rnn", "prompt": "hi", "max_tokens": 1_000_000},
            timeout=60)))
        sender.start()
        deadline = time.monotonic() + 30
        while served.scheduler.stats.steps < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.server.should_exit = True  # what uvicorn's SIGTERM handler does
        sender.join(timeout=60)
    assert results[0].status_code == status
    if status == 200:
        assert results[0].json()["usage"]["completion_tokens"] == 3000
    else:
        assert results[0].json()["error"]["code"] == "shutting_down"
    assert "Traceback" not in caplog.text


# --- fuzzing the JSON API ------------------------------------------------------------------------------


def test_fuzz_json_requests_never_5xx(run_dir):
    """Arbitrary JSON (and some non-JSON) against both generation routes: a 200 or a 4xx in OpenAI's error
    shape, never a 5xx, and the server keeps answering."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=30)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8),
                                                                                              inner, max_size=4),
                          max_leaves=12)
    known = st.fixed_dictionaries({}, optional={
        "model": st.sampled_from(["tiny", "other"]) | values, "prompt": values | st.text(max_size=50),
        "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "x"]),
                                                    "content": st.text(max_size=40) | values}), max_size=3) | values,
        "max_tokens": st.integers(-5, 4) | values, "temperature": st.floats(allow_nan=True) | values,
        "top_p": values, "top_k": values, "n": st.integers(-1, 3) | values, "stop": values, "seed": values,
        "stream": st.booleans() | values, "presence_penalty": values, "logprobs": values})
    bodies = known | values | st.binary(max_size=40)
    served = ServedModel.from_run(run_dir, max_tokens=4)
    with ServerThread(create_app(served)) as server, httpx.Client(base_url=server.url, timeout=30) as http:

        @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(route=st.sampled_from(["/v1/completions", "/v1/chat/completions"]), body=bodies)
        def fuzz(route, body):
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            response = http.post(route, content=content, headers={"Content-Type": "application/json"})
            assert response.status_code < 500, (body, response.text)
            if response.status_code >= 400:
                error = response.json()["error"]
                assert isinstance(error["message"], str) and "\n" not in error["message"]

        fuzz()
        assert http.get("/health").status_code == 200
