"""The server end to end: a real uvicorn on 127.0.0.1 serving a tiny run, driven by the official `openai`
client, raw HTTP, a load generator, schemathesis and a headless Chromium."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from lm2llm.serve.app import ServedModel, ServerThread, bind_socket, create_app
from lm2llm.serve.demo import save_demo_run
from lm2llm.serve.loadgen import run_load

KEY = "test-key"
TEXTS = ["안녕하세요 반갑습니다. 오늘 날씨가 좋네요! 한국어 문장을 만듭니다.",
         "The quick brown fox jumps over the lazy dog. Python is a programming language."] * 10
pytestmark = pytest.mark.usefixtures("one_torch_thread")
HELLO = [{"role": "system", "content": "짧게 답하세요."}, {"role": "user", "content": "안녕하세요, 오늘 날씨 어때요?"}]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return save_demo_run(tmp_path_factory.mktemp("serve") / "tiny-ko", TEXTS, vocab_size=400,
                         context_length=96, n_layer=2, d_model=48, n_head=4)


@pytest.fixture(scope="module")
def server(run_dir):
    served = ServedModel.from_run(run_dir, max_batch=8, max_waiting=1024)
    with ServerThread(create_app(served, api_key=KEY)) as running:
        running.served = served
        yield running


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def test_models_and_health(client, server):
    assert [m.id for m in client.models.list()] == ["tiny-ko"]
    health = httpx.get(server.url + "/health").json()
    assert health["status"] == "ok" and health["model"] == "tiny-ko"


def test_chat_stream_equals_chat_and_ends_with_usage(client, server):
    common = dict(model="tiny-ko", messages=HELLO, max_tokens=24, temperature=1.0, seed=7)
    whole = client.chat.completions.create(**common)
    choice = whole.choices[0]
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    tokenizer = server.served.tokenizer
    prompt_ids, _ = tokenizer.render_chat(HELLO, add_generation_prompt=True)
    assert whole.usage.prompt_tokens == len(prompt_ids)
    assert 0 < whole.usage.completion_tokens <= 24
    chunks = list(client.chat.completions.create(**common, stream=True, stream_options={"include_usage": True}))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == choice.message.content
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == choice.finish_reason


def test_raw_stream_is_server_sent_events_ending_in_done(server):
    body = {"model": "tiny-ko", "prompt": "오늘 날씨", "max_tokens": 5, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "text_completion"


def test_completions_stream_n_seed_echo_and_max_tokens(client):
    common = dict(model="tiny-ko", prompt=["안녕하세요", "Python is"], max_tokens=9, seed=3, n=2)
    whole = client.completions.create(**common)
    assert [c.index for c in whole.choices] == [0, 1, 2, 3]
    assert all(c.finish_reason in ("stop", "length") for c in whole.choices)
    assert whole.usage.completion_tokens <= 4 * 9
    texts = ["", "", "", ""]
    for chunk in client.completions.create(**common, stream=True):
        for c in chunk.choices:
            texts[c.index] += c.text
    assert texts == [c.text for c in whole.choices]
    alone = client.completions.create(model="tiny-ko", prompt="안녕하세요", max_tokens=9, seed=3)
    assert alone.choices[0].text == whole.choices[0].text  # choice i uses seed + i
    echoed = client.completions.create(model="tiny-ko", prompt="안녕하세요", max_tokens=9, seed=3, echo=True)
    assert echoed.choices[0].text == "안녕하세요" + alone.choices[0].text
    exact = client.completions.create(model="tiny-ko", prompt="오늘", max_tokens=5, temperature=1, seed=1)
    if exact.choices[0].finish_reason == "length":
        assert exact.usage.completion_tokens == 5


def test_stop_strings_cut_the_text(client):
    free = client.completions.create(model="tiny-ko", prompt="한국어", max_tokens=30, seed=5).choices[0].text
    starts = [i for i in range(2, len(free) - 1) if "\ufffd" not in free[i:i + 2]]
    if not starts:
        pytest.skip("the sampled text is too short to pick a stop string from")
    stop = free[starts[0]:starts[0] + 2]
    cut = client.completions.create(model="tiny-ko", prompt="한국어", max_tokens=30, seed=5, stop=[stop, "없는말"])
    assert cut.choices[0].text == free[:free.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="tiny-ko", prompt="한국어", max_tokens=30, seed=5, stop=stop, stream=True))
    assert streamed == cut.choices[0].text


def test_wrong_key_is_401(server):
    bad = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.models.list()
    assert caught.value.status_code == 401 and caught.value.body["code"] == "invalid_api_key"
    assert httpx.post(server.url + "/v1/completions", json={}).status_code == 401


@pytest.mark.parametrize("change,param", [
    ({"temperature": 5}, "temperature"),
    ({"messages": []}, "messages"),
    ({"n": 0}, "n"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"logprobs": True}, "logprobs"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages"),
])
def test_invalid_requests_are_400_not_422(client, change, param):
    body = {"model": "tiny-ko", "messages": HELLO, "max_tokens": 4, **change}
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(**body)
    assert caught.value.status_code == 400
    assert caught.value.body["type"] == "invalid_request_error" and param in caught.value.body["param"]


def test_client_mistakes_get_their_status(client, server):
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="gpt-5", prompt="hi", max_tokens=2)
    with pytest.raises(openai.BadRequestError) as caught:
        client.completions.create(model="tiny-ko", prompt="한국어 " * 200, max_tokens=2)
    assert caught.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny-ko", messages=[{"role": "user", "content": "<|end|>"}])
    assert caught.value.body["code"] == "invalid_prompt"
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    broken = httpx.post(server.url + "/v1/completions", content=b'{"model": ', headers=headers)
    assert broken.status_code == 400 and "error" in broken.json()
    huge = httpx.post(server.url + "/v1/completions", content=b"x" * (2 << 20), headers=headers)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "request_too_large"


def test_a_full_queue_answers_429(run_dir):
    served = ServedModel.from_run(run_dir, max_batch=1, max_waiting=1)
    body = {"model": "tiny-ko", "prompt": "안녕", "max_tokens": 80, "temperature": 1, "seed": 0}
    with ServerThread(create_app(served)) as server:
        statuses: list[int] = []

        def send() -> None:
            statuses.append(httpx.post(server.url + "/v1/completions", json=body, timeout=60).status_code)

        threads = [threading.Thread(target=send) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}


def test_load_500_requests_16_concurrent_no_server_errors(server):
    stats = server.served.scheduler.stats
    before = stats.largest_batch

    def body(i: int) -> dict:
        return {"model": "tiny-ko", "prompt": ["안녕하세요", "Python is", "오늘 날씨"][i % 3], "max_tokens": 6,
                "seed": i}

    result = run_load(server.url, body, clients=16, requests=500, api_key=KEY, time_limit=40)
    assert result.server_errors == 0
    assert set(result.statuses) == {200} and result.requests >= 100
    assert result.peers == {"127.0.0.1"}
    assert max(before, stats.largest_batch) > 1  # requests did share decode steps


def test_a_client_that_leaves_frees_its_row(server):
    body = {"model": "tiny-ko", "prompt": "안녕", "max_tokens": 90, "stream": True, "seed": 1}
    with httpx.stream("POST", server.url + "/v1/completions", json=body,
                      headers={"Authorization": f"Bearer {KEY}"}) as response:
        next(response.iter_lines())
    for _ in range(200):
        if not any(server.served.scheduler.load.values()):
            break
        threading.Event().wait(0.02)
    assert server.served.scheduler.load == {"live": 0, "waiting": 0}


def test_schemathesis_finds_no_failures(server):
    """Fuzz every documented operation from /openapi.json: no 5xx, statuses and bodies as documented, bad
    data refused (400, or 413 for a body over the size limit). A schema-valid request may still be refused
    with 400 for what JSON Schema cannot say (a prompt longer than the context, a special token in a
    message): those two error codes are allowed, no other."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis.core.parameters import ParameterLocation
    from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json", headers={"Authorization": f"Bearer {KEY}"})

    def invalid_data_refused(ctx, response, case):
        if response.status_code == 413:  # a body over the size limit is refused before it is parsed
            return None
        return negative_data_rejection(ctx, response, case)

    def valid_data_accepted(ctx, response, case):
        if response.status_code == 400 and response.json()["error"]["code"] in ("context_length_exceeded",
                                                                                  "invalid_prompt"):
            return None
        return positive_data_acceptance(ctx, response, case)

    for result in schema.get_all_operations():
        operation = result.ok()
        cases = st.one_of(operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
                          operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))

        @settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=cases)
        def fuzz(case):
            auth = {}
            if not case.meta.is_negative_at(ParameterLocation.HEADER):  # a malformed header is the test itself
                if case.headers:
                    case.headers.pop("Authorization", None)
                auth = {"Authorization": f"Bearer {KEY}"}  # explicit: the auth check then probes bad keys itself
            if isinstance(case.body, dict) and isinstance(case.body.get("max_tokens"), int):
                case.body["max_tokens"] = max(0, min(case.body["max_tokens"], 8))  # keep each case quick
            case.call_and_validate(headers=auth, additional_checks=[valid_data_accepted, invalid_data_refused],
                                   excluded_checks=[positive_data_acceptance, negative_data_rejection])

        fuzz()


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium executable (apt-get install chromium) for the browser test")
def test_web_page_streams_a_korean_reply_in_chromium(server, client):
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.fill("#api-key", KEY)
            page.dispatch_event("#api-key", "change")
            page.wait_for_function("document.getElementById('model').textContent.includes('tiny-ko')")
            page.fill("#system", HELLO[0]["content"])
            page.fill("#seed", "7")
            page.fill("#max-tokens", "24")
            page.fill("#input", HELLO[1]["content"])
            page.press("#input", "Enter")
            reply = page.locator(".msg.assistant").last
            page.wait_for_function("document.querySelector('.msg.assistant').dataset.done === 'true'", timeout=30_000)
            shown, chunks = reply.text_content(), int(reply.get_attribute("data-chunks"))
            assert page.locator(".msg.user").last.text_content() == HELLO[1]["content"]
            page.click("#clear")
            assert page.locator(".msg").count() == 0
        finally:
            browser.close()
    expected = client.chat.completions.create(model="tiny-ko", messages=HELLO, max_tokens=24, temperature=0.7,
                                              top_p=0.9, seed=7)  # the page's default sliders
    assert shown == expected.choices[0].message.content and shown
    assert chunks > 1  # it arrived in pieces, not at once


def test_serve_cli_answers_and_refuses_bad_input(cli, run_dir, tmp_path):
    import os
    import subprocess
    import sys
    import time

    from conftest import SRC

    taken = bind_socket("127.0.0.1", 0)
    taken.listen()  # a server is on it
    port = taken.getsockname()[1]
    try:
        failed = cli("serve", run_dir, "--port", port)
        assert failed.code == 2 and "cannot listen" in failed.err
    finally:
        taken.close()
    assert cli("serve", tmp_path).code == 2  # not a run directory
    process = subprocess.Popen([sys.executable, "-m", "lm2llm", "serve", str(run_dir), "--port", str(port)],
                               env={**os.environ, "PYTHONPATH": str(SRC)}, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).json()
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stderr.read()
                time.sleep(0.1)
        assert health["model"] == "tiny-ko"
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/completions", timeout=30,
                            json={"model": "tiny-ko", "prompt": "안녕", "max_tokens": 3}).json()
        assert answer["usage"]["prompt_tokens"] > 0
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_deployment_chapter_measured_over_loopback(quick_tour):
    result = next(r for chapter, r, _ in quick_tour.chapters if chapter.id == "9.2")
    for mode in ("batched", "one at a time"):
        for clients in ("1", "4", "8"):
            level = result.metrics[mode][clients]
            assert set(level["statuses"]) == {"200"} and level["tokens_per_second"] > 0
    assert result.metrics["batched"]["8"]["mean_batch"] > 1  # concurrent requests shared steps
    assert result.metrics["one at a time"]["8"]["mean_batch"] == 1
    connections = result.metrics["connections"]
    assert connections["count"] > 0 and connections["hosts"] == ["127.0.0.1"] == connections["bound"]
    on_premise = result.claims[-1]
    assert on_premise.holds and "127.0.0.1" in on_premise.measurement.en and on_premise.statement.ko


def test_latency_ratio_interval_says_whether_latency_grew_beyond_the_noise():
    from lm2llm.serve.loadgen import LoadResult, latency_ratio_interval

    rng = np.random.default_rng(1)
    base = LoadResult(1, 1.0, list(0.1 + 0.01 * rng.random(6)))
    same = LoadResult(8, 1.0, list(0.1 + 0.01 * rng.random(48)))
    slower = LoadResult(8, 1.0, list(0.3 + 0.03 * rng.random(48)))
    low, high = latency_ratio_interval(base, same)
    assert low < 1.0 < high
    low, high = latency_ratio_interval(base, slower)
    assert 2.5 < low <= high < 3.5
    assert latency_ratio_interval(base, slower) == (low, high)  # seeded: the same interval every run
