# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 9.2 Deployment · 배포
#
# `lm2llm serve` puts a run behind an OpenAI-compatible HTTP API with continuous batching, bound to
# 127.0.0.1. Here we build a small (untrained) run from the bundled corpora, start the same app on a
# background thread, and call it as any OpenAI client would: its text is noise, but the API, batching and
# latency are real.
#
# `lm2llm serve`는 실행 폴더를 연속 배칭과 함께 OpenAI 호환 HTTP API 뒤에 두고 127.0.0.1에 묶습니다. 여기서는
# 내장 말뭉치로 작은(학습하지 않은) 실행 폴더를 만들고, 같은 앱을 백그라운드 스레드로 띄워 여느 OpenAI
# 클라이언트처럼 부릅니다. 생성 글은 잡음이지만 API, 배칭, 지연 시간은 진짜입니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import tempfile
from pathlib import Path

import httpx

from lm2llm.data import load_documents
from lm2llm.serve.app import ServedModel, ServerThread, create_app
from lm2llm.serve.demo import save_demo_run
from lm2llm.serve.loadgen import run_load

folder = tempfile.TemporaryDirectory()
texts = load_documents("korean-law", limit=3) + load_documents("python-docs", limit=20)
run_dir = save_demo_run(Path(folder.name) / "served", texts, vocab_size=512, context_length=128, n_layer=2,
                        d_model=64, n_head=4)
served = ServedModel.from_run(run_dir, max_batch=8)

# %%
with ServerThread(create_app(served)) as server:
    request = {"model": served.model_id, "prompt": "대한민국은", "max_tokens": 8}
    reply = httpx.post(f"{server.url}/v1/completions", json=request, timeout=60)
    print(server.url, reply.status_code, reply.json()["choices"][0]["text"][:60], reply.json()["usage"])
    clients = 4 if QUICK else 16
    load = run_load(server.url, lambda i: {**request, "prompt": texts[i % len(texts)][:30]},
                    clients=clients, requests=2 * clients)
print(load.summary())

# %% [markdown]
# **Exercise · 연습.** Check that every request was answered (status 200), that the server listened on the
# loopback address only, and read the throughput in completion tokens per second.
#
# 모든 요청이 응답(상태 200)을 받았는지, 서버가 루프백 주소에서만 들었는지 확인하고, 생성 토큰 기준 처리량을
# 읽어 보세요.

# %%
print(f"{load.tokens_per_second:.0f} completion tokens/s over {load.requests} requests")
assert load.statuses == {200: 2 * clients} and server.host == "127.0.0.1" and reply.status_code == 200
folder.cleanup()
