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
# # 0. Your machine · 내 컴퓨터
#
# Every speed figure later in the tour (tokens per second, MFU) is read against how fast this machine
# multiplies matrices. We measure it here with `lm2llm.env`, the same code `lm2llm tour` uses.
#
# 투어의 모든 속도 수치(초당 토큰, MFU)는 이 컴퓨터가 행렬을 얼마나 빨리 곱하는지에 견주어 읽습니다.
# 여기서 `lm2llm tour`와 같은 코드(`lm2llm.env`)로 직접 잽니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import torch

from lm2llm import env

SIZE = 256 if QUICK else 1024
SECONDS = 0.2 if QUICK else 1.0
print("device:", env.best_device(), "· torch threads:", torch.get_num_threads(), "· bf16:", env.cpu_supports_bf16())

# %% [markdown]
# A matrix product of two n×n matrices costs 2·n³ floating-point operations (a multiply and an add per
# term). `measure_matmul` repeats one for a while and divides.
#
# n×n 행렬 두 개의 곱은 2·n³번의 부동소수점 연산입니다(항마다 곱셈 하나, 덧셈 하나). `measure_matmul`은
# 이를 잠시 반복한 뒤 시간으로 나눕니다.

# %%
fp32 = env.measure_matmul(torch.float32, size=SIZE, seconds=SECONDS)
print(fp32)

# %% [markdown]
# **Exercise · 연습.** Time one product yourself with `time.perf_counter` and compute its GFLOP/s from
# 2·n³. It should be within a small factor of `measure_matmul`'s figure (one product is noisier).
#
# `time.perf_counter`로 곱셈 한 번을 직접 재고 2·n³으로 GFLOP/s를 계산해 보세요. `measure_matmul`의
# 값과 몇 배 안쪽으로 비슷해야 합니다(한 번만 재면 잡음이 큽니다).

# %%
import time

a, b = torch.randn(SIZE, SIZE), torch.randn(SIZE, SIZE)
a @ b  # warm-up · 예열
start = time.perf_counter()
for _ in range(5):
    a @ b
mine = 5 * 2 * SIZE**3 / (time.perf_counter() - start) / 1e9
print(f"my estimate {mine:.1f} GFLOP/s, measure_matmul {fp32.gflops:.1f} GFLOP/s")
assert mine > 0 and fp32.gflops / 50 < mine < fp32.gflops * 50  # loose: a shared machine is noisy
