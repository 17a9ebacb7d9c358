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
# # 4.2 Tokenization · 토큰화
#
# Byte-level BPE starts from the 256 bytes and repeatedly merges the most frequent adjacent pair. How many
# tokens a text costs depends on what the vocabulary was trained on: we train small BPEs on English and on
# Korean (`lm2llm.tokenizer.BPETokenizer`) and count tokens per word (fertility).
#
# 바이트 수준 BPE는 256개 바이트에서 시작해 가장 자주 붙어 나오는 쌍을 거듭 합칩니다. 글 하나에 드는 토큰
# 수는 어휘를 무엇으로 학습했는지에 달려 있습니다: 영어와 한국어로 작은 BPE를 학습하고 단어당 토큰 수(fertility)를
# 셉니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
from lm2llm.data import first_chars, load_documents
from lm2llm.tokenizer import BPETokenizer
from lm2llm.tokenizer.stats import fertility

VOCAB = 512 if QUICK else 2048
korean = load_documents("korean-law")
korean_train, korean_test = korean[1:], korean[:1]  # hold out the constitution · 헌법은 평가용으로 남김
english = load_documents("python-docs", limit=60 if QUICK else 600)
english_train, english_test = first_chars(english[1:], sum(map(len, korean_train))), english[:1]
english_bpe = BPETokenizer.train(english_train, VOCAB)
korean_bpe = BPETokenizer.train(korean_train, VOCAB)

sentence = "대한민국의 모든 국민은 인간으로서의 존엄과 가치를 가진다."
for name, tokenizer in (("English BPE", english_bpe), ("Korean BPE", korean_bpe)):
    ids = tokenizer.encode(sentence)
    print(f"{name}: {len(ids)} tokens · round trip ok: {tokenizer.decode(ids) == sentence}")

# %% [markdown]
# Fertility per language: an English word against a Korean eojeol (어절), each tokenizer on held-out text.
#
# 언어별 fertility: 영어 단어 대 한국어 어절, 각 토크나이저를 학습에 쓰지 않은 글에 적용합니다.

# %%
table = {}
for name, tokenizer in (("English BPE", english_bpe), ("Korean BPE", korean_bpe)):
    en = fertility(tokenizer, english_test).by_language["en"].tokens_per_word
    ko = fertility(tokenizer, korean_test).by_language["ko"].tokens_per_word
    table[name] = (en, ko)
    print(f"{name}: English {en:.2f} tokens/word · Korean {ko:.2f} tokens/eojeol")

# %% [markdown]
# **Exercise · 연습.** Check that each tokenizer is cheapest on the language it was trained on, and that an
# English-only vocabulary spends more than twice the tokens on a Korean eojeol as the Korean one does.
#
# 각 토크나이저가 자기가 학습한 언어에서 가장 싼지, 그리고 영어 전용 어휘가 한국어 어절에 한국어 어휘의 두 배
# 넘는 토큰을 쓰는지 확인하세요.

# %%
assert table["English BPE"][0] < table["Korean BPE"][0] and table["Korean BPE"][1] < table["English BPE"][1]
assert table["English BPE"][1] > 2 * table["Korean BPE"][1]
