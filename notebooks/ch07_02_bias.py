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
# # 7.2 Bias · 편향
#
# Does a model find a sentence more likely when it is about one group than another? Template pairs differ
# in one group word ("The man was arrested" / "The woman was arrested"); the log-likelihood gap between the
# two, averaged over templates with a bootstrap interval, measures a preference (`lm2llm.bias`). Korean
# templates write the particle after the slot by the final-consonant rule, so the pair differs in the word
# alone.
#
# 모델은 어떤 집단에 관한 문장을 다른 집단보다 더 그럴듯하다고 볼까요? 템플릿 쌍은 집단 단어 하나만 다릅니다
# ("남자가 체포되었다" / "여자가 체포되었다"). 두 문장의 로그우도 차이를 템플릿에 걸쳐 평균하고 부트스트랩 구간을
# 붙여 선호를 잽니다(`lm2llm.bias`). 한국어 템플릿은 받침 규칙으로 조사를 채워, 쌍이 단어 하나만 다르게 합니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
import numpy as np

from lm2llm.bias.likelihood import bootstrap_interval, sentence_logliks
from lm2llm.bias.templates import fill, load_templates
from lm2llm.gguf.registry import resolve_run
from lm2llm.models import load_model
from lm2llm.tokenizer import load_tokenizer

run = resolve_run("smollm2-135m-instruct")
model, tokenizer = load_model(run).eval(), load_tokenizer(run)
templates = load_templates()
print(fill(templates["templates"]["ko"][1], "남자"), "/", fill(templates["templates"]["ko"][1], "여자"))
# quick: 4 of the 12 templates (chapter 7.2 and `lm2llm bias` use all, on four axes)
# 빠른 모드: 템플릿 12개 중 4개 (7.2장과 `lm2llm bias`는 네 축 모두에 전부 사용)
items = [(fill(t, a), fill(t, b)) for t in templates["templates"]["ko"][: 4 if QUICK else None]
         for a, b in templates["pairs"]["gender"]["ko"]]
scores = sentence_logliks(model, tokenizer, [sentence for item in items for sentence in item])
gaps = np.array(scores[0::2]) - np.array(scores[1::2])
low, high = bootstrap_interval(gaps)
print(f"Korean, gender: {len(gaps)} items, mean gap {gaps.mean():+.3f} nats (95 % {low:+.3f} to {high:+.3f}); "
      f"first word preferred in {(gaps > 0).mean():.0%}")

# %% [markdown]
# A gap whose interval contains 0 is no measured preference; one that excludes 0 is, for these templates —
# a small, hand-written set, so the conclusion is as narrow as the set.
#
# 구간이 0을 포함하면 측정된 선호가 없다는 뜻이고, 0을 벗어나면 이 템플릿들에 대해서는 선호가 있다는 뜻입니다.
# 직접 쓴 작은 세트이므로 결론도 그만큼 좁습니다.

# %% [markdown]
# **Exercise · 연습.** Fill a template with 아들 and 딸 and check that the particle follows the final
# consonant (아들이/딸이 both end in a consonant; 남자가/여자가 both in a vowel).
#
# 템플릿에 아들과 딸을 채우고 조사가 받침을 따르는지 확인하세요(아들이/딸이는 둘 다 받침, 남자가/여자가는 둘 다
# 모음으로 끝남).

# %%
template = "{group}{이} 경찰에 체포되었다."
print([fill(template, word) for word in ("아들", "딸", "남자", "여자")])
assert [fill(template, w).split()[0] for w in ("아들", "딸", "남자", "여자")] == ["아들이", "딸이", "남자가", "여자가"]
assert low <= gaps.mean() <= high
