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
# # 4.1 Data · 데이터
#
# Before pre-training, a corpus is cleaned, deduplicated and scrubbed of personal information (PII).
# We try the pieces of `lm2llm.data` that `lm2llm data prepare` chains: shingles and Jaccard similarity
# for near-duplicates, and the PII detector on English and Korean text.
#
# 사전학습 전에 말뭉치는 정제, 중복 제거, 개인정보(PII) 제거를 거칩니다. `lm2llm data prepare`가 잇는
# `lm2llm.data`의 부품을 써 봅니다: 유사 중복을 찾는 싱글과 Jaccard 유사도, 영어와 한국어의 개인정보 탐지기.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
from lm2llm.data.dedup import jaccard, shingles
from lm2llm.data.pii import evaluate_detector, find_pii, scrub

a = "The quick brown fox jumps over the lazy dog near the river bank today."
b = "The quick brown fox jumps over the lazy dog near the river bank tonight."
c = "Tokenizers split text into pieces that a language model can count."
print("near-duplicates:", round(jaccard(shingles(a, size=3), shingles(b, size=3)), 3),
      "· unrelated:", round(jaccard(shingles(a, size=3), shingles(c, size=3)), 3))

text = "문의: 홍길동 010-1234-5678, hong@example.com / call +1 (415) 555-0132"
print([(m.type, m.value) for m in find_pii(text)])
print(scrub(text)[0])

# %% [markdown]
# The detector is measured on a labelled English/Korean set: precision (how many found items are real)
# and recall (how many real items are found), per type.
#
# 탐지기는 라벨이 달린 영어/한국어 세트에서 유형별 정밀도(찾은 것 중 진짜 비율)와 재현율(진짜 중 찾은
# 비율)로 측정합니다.

# %%
scores = evaluate_detector()
for kind, score in scores.items():
    print(f"{kind:10s} precision {score.precision:.2f} recall {score.recall:.2f}")

# %% [markdown]
# **Exercise · 연습.** Write a Korean sentence with an e-mail address and check that `scrub` removes it
# while keeping the Korean words.
#
# 이메일 주소가 든 한국어 문장을 쓰고, `scrub`이 한국어 단어는 남기고 주소는 지우는지 확인하세요.

# %%
mine = "자세한 내용은 student@school.ac.kr 로 보내 주세요."
cleaned, counts = scrub(mine)
print(cleaned, dict(counts))
assert "student@school.ac.kr" not in cleaned and "자세한 내용은" in cleaned and counts["EMAIL"] == 1
