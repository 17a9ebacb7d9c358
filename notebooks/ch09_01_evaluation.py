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
# # 9.1 Evaluation and model selection · 평가와 모델 선택
#
# A score means little without its chance level and its interval. `lm2llm.evaluate.metrics` computes what
# lm-eval computes (accuracy, bits per byte, standard errors), and `lm2llm.stats.wilson_interval` gives a
# 95 % interval for a rate. We score a Kneser-Ney trigram on held-out English and Korean in bits per byte.
#
# 점수는 우연 수준과 구간 없이는 의미가 적습니다. `lm2llm.evaluate.metrics`는 lm-eval과 같은 값(정확도, 바이트당
# 비트, 표준오차)을 계산하고, `lm2llm.stats.wilson_interval`은 비율의 95 % 구간을 줍니다. Kneser-Ney
# 트라이그램을 학습에 쓰지 않은 영어와 한국어 글에서 바이트당 비트로 평가합니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import math

from lm2llm.data import load_documents
from lm2llm.evaluate.metrics import bits_per_unit, bootstrap_stderr, centred
from lm2llm.ngram import NgramConfig, sentence_scores, train
from lm2llm.ngram.model import evaluate
from lm2llm.stats import wilson_interval
from lm2llm.tour.chapters.ch01_01_ngrams import document_lines

for name, docs in {"English": load_documents("python-docs", limit=40 if QUICK else 400),
                   "Korean": load_documents("korean-law")}.items():
    train_lines, test_lines = document_lines(docs, 4)
    model = train(train_lines, NgramConfig(order=3, discount_fallback=True))
    logprobs = sentence_scores(model, test_lines) * math.log(10)  # natural log per line · 줄마다 자연로그
    units = [len(line.encode("utf-8")) + 1 for line in test_lines]  # UTF-8 bytes, newline included
    unknown = evaluate(model, test_lines)
    print(f"{name}: {bits_per_unit(logprobs, units):.3f} ± {bootstrap_stderr(logprobs, units, iterations=200):.3f} "
          f"bits per byte; {unknown.oov / unknown.tokens:.0%} of the words were never seen and scored as <unk>")

# %% [markdown]
# Careful: the Korean figure looks better only because many more Korean words are unknown, and `<unk>` is a
# cheap guess. A fair comparison scores every byte (chapter 1.1's character n-gram does).
#
# 주의: 한국어 수치가 더 좋아 보이는 것은 모르는 단어가 훨씬 많고 `<unk>`가 값싼 추측이기 때문입니다. 공정한
# 비교는 모든 바이트에 점수를 매겨야 합니다(1.1장의 문자 n-gram처럼).

# %% [markdown]
# **Exercise · 연습.** A model answers 30 of 40 four-way multiple-choice questions. Centre the score on
# chance (0.25) and give its Wilson 95 % interval: is it surely above chance?
#
# 모델이 사지선다 40문항 중 30개를 맞혔습니다. 점수를 우연 수준(0.25)에 맞춰 중심화하고 Wilson 95 % 구간을
# 구하세요: 확실히 우연보다 높은가요?

# %%
low, high = wilson_interval(30, 40)
print(f"accuracy 0.75, centred {centred(0.75, 0.25):.3f}, 95 % interval {low:.3f}–{high:.3f}")
assert abs(centred(0.75, 0.25) - 2 / 3) < 1e-12 and low > 0.25
