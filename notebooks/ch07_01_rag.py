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
# # 7.1 Hallucination and RAG · 환각과 RAG
#
# A model cannot know facts it never saw; retrieval-augmented generation (RAG) puts the right passage in the
# prompt. The first half of RAG is retrieval: here BM25 (written from scratch in `lm2llm.rag.bm25`) over an
# invented encyclopedia, in English and Korean, so no model could know the answers.
#
# 모델은 본 적 없는 사실을 알 수 없습니다. 검색 증강 생성(RAG)은 알맞은 구절을 프롬프트에 넣어 줍니다. RAG의
# 앞 절반은 검색입니다: 여기서는 처음부터 구현한 BM25(`lm2llm.rag.bm25`)로, 어떤 모델도 답을 알 수 없는
# 지어낸 백과사전을 영어와 한국어로 검색합니다.

# %% tags=["parameters"]
QUICK = True  # quick mode: tiny budgets (CI runs every notebook this way) · 빠른 모드: 작은 예산

# %%
from lm2llm.rag import encyclopedia
from lm2llm.rag.bm25 import BM25
from lm2llm.rag.terms import content_terms


def recall_at(lang: str, k: int, limit: int) -> float:
    """Share of questions whose gold article is among BM25's top k."""
    origins, texts = zip(*encyclopedia.articles(lang), strict=True)
    index = BM25.fit([content_terms(t) for t in texts])
    questions = encyclopedia.questions(lang)[:limit]
    hits = [q.gold_origin in {origins[i] for i in index.top_k(content_terms(q.question), k)[0]} for q in questions]
    return sum(hits) / len(hits)


question = encyclopedia.questions("ko")[0]
print(question.question, "→", question.answer)
print(encyclopedia.articles("ko")[0][1][:200])
for lang in ("en", "ko"):
    print(lang, "recall@1", recall_at(lang, 1, 40 if QUICK else 400), "· recall@5", recall_at(lang, 5, 40 if QUICK else 400))

# %% [markdown]
# Korean words change form with particles (서울에, 서울은, 서울의), so `content_terms` indexes Korean as
# overlapping two-syllable pieces (bigrams); English words are kept whole.
#
# 한국어 단어는 조사에 따라 모양이 바뀌므로(서울에, 서울은, 서울의) `content_terms`는 한국어를 겹치는 두 음절
# 조각(바이그램)으로 색인하고, 영어 단어는 그대로 둡니다.

# %% [markdown]
# **Exercise · 연습.** Check that a question with a particle attached still shares terms with the bare name.
#
# 조사가 붙은 질문도 맨 이름과 색인어를 공유하는지 확인하세요.

# %%
print(content_terms("가람시는 언제 세워졌나요?"), content_terms("가람시"))
assert set(content_terms("가람시")) <= set(content_terms("가람시는 언제 세워졌나요?"))
assert recall_at("ko", 5, 40) > 0.5
