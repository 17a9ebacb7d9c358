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
# # 1.1 Language models and n-grams · 언어 모델과 n-gram
#
# An n-gram model predicts the next word from the previous N−1 words by counting. We count python-docs
# (English) and korean-law (Korean) with `lm2llm.ngram`, the code behind `lm2llm ngram train`, and see
# where counts run out.
#
# n-gram 모델은 앞의 N−1 단어로 다음 단어를 셈(빈도)으로 예측합니다. `lm2llm ngram train`과 같은 코드로
# python-docs(영어)와 korean-law(한국어)를 세어 보고, 셈이 어디서 한계에 부딪히는지 봅니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
from lm2llm.data import first_chars, load_documents
from lm2llm.ngram import NgramConfig, generate, train
from lm2llm.ngram.limits import character_cost, perplexity_by_order, unseen_shares
from lm2llm.tour.chapters.ch01_01_ngrams import document_lines

english_train, english_test = document_lines(load_documents("python-docs", limit=40 if QUICK else 1200), 10)
korean_train, korean_test = document_lines(load_documents("korean-law"), 4)
print(len(english_train), "English training lines ·", len(korean_train), "Korean training lines")

# %% [markdown]
# **Perplexity by order.** Lower is better: the model is "this many ways unsure" about each next word.
# Kneser-Ney smoothing keeps unseen words from getting probability 0.
#
# **차수별 퍼플렉서티.** 낮을수록 좋습니다: 다음 단어마다 "이만큼의 갈래로 헷갈린다"는 뜻입니다. Kneser-Ney
# 스무딩은 처음 보는 단어가 확률 0을 받지 않게 합니다.

# %%
orders = [1, 2, 3]
sweep = perplexity_by_order(english_train, english_test, orders, ("mle", "kneser-ney"), kind="words")
for i, n in enumerate(orders):
    print(f"order {n}: Kneser-Ney {sweep.perplexity['kneser-ney'][i]:8.1f} · "
          f"MLE zero-probability share {sweep.zero_share['mle'][i]:.1%}")
model = train(english_train, NgramConfig(order=3, tokenize="words"))
print("sample:", "The " + generate(model, "The", max_words=12, seed=0))

# %% [markdown]
# **English vs Korean.** Word perplexities of two languages cannot be compared: a Korean eojeol (어절)
# carries its particles and endings. So we compare on the same amount of training text: the share of
# unseen words, and a character n-gram's bits per character and per UTF-8 byte.
#
# **영어 대 한국어.** 두 언어의 단어 퍼플렉서티는 비교할 수 없습니다: 한국어 어절에는 조사와 어미가
# 붙어 있습니다. 그래서 같은 양의 학습 글로, 처음 보는 단어의 비율과 문자 n-gram의 글자당·바이트당 비트를
# 비교합니다.

# %%
chars = sum(map(len, korean_train))
english = (first_chars(english_train, chars), first_chars(english_test, sum(map(len, korean_test))))
for name, (tr, te) in {"English": english, "Korean": (korean_train, korean_test)}.items():
    cost = character_cost(tr, te, order=4)
    print(f"{name:8s} unseen words {unseen_shares(tr, te, 1, kind='words')[0]:.1%} · "
          f"{cost.bits_per_char:.2f} bits/char · {cost.bits_per_byte:.2f} bits/byte")

# %% [markdown]
# **Exercise · 연습.** Train a Korean word trigram and check that smoothing gives every held-out Korean
# sentence a finite score, while MLE (no smoothing) gives some word probability 0.
#
# 한국어 단어 트라이그램을 학습하고, 스무딩이 있으면 모든 검증 문장이 유한한 점수를 받지만 MLE(스무딩
# 없음)는 어떤 단어에 확률 0을 준다는 것을 확인하세요.

# %%
korean = perplexity_by_order(korean_train, korean_test, [3], ("mle", "kneser-ney"), kind="words")
print(korean.perplexity, korean.zero_share)
assert korean.zero_share["kneser-ney"][0] == 0 and korean.zero_share["mle"][0] > 0
