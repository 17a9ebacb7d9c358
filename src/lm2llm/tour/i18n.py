"""Korean for the report's table headers and recurring row labels.

Chapters write a table's columns as short English labels (they double as JSON keys in `result.json`);
the `--lang ko` report shows them through this glossary, so no header stays English-only. Names that read
the same in both languages (model and corpus names, acronyms, units, estimator names) stay as written; a
label missing from the glossary is caught by tests/test_tour_i18n.py, which names it.
"""

from __future__ import annotations

import re

KO = {
    # corpora, languages, tokenizers
    "English (python-docs)": "영어 (python-docs)", "Korean (korean-law)": "한국어 (korean-law)",
    "English": "영어", "Korean": "한국어", "English only": "영어만", "English + Korean": "영어+한국어",
    "Korean ÷ English": "한국어 ÷ 영어", "language": "언어", "corpus": "말뭉치", "training text": "학습 글",
    "tokenizer": "토크나이저", "vocab": "어휘", "tokens": "토큰", "token": "토큰", "tokens/char": "토큰/글자",
    "tokens/word": "토큰/어절(단어)", "bytes/token": "바이트/토큰", "English tokens/char": "영어 토큰/글자",
    "Korean tokens/char": "한국어 토큰/글자", "Korean tokens/word": "한국어 토큰/어절",
    "Korean bytes/token": "한국어 바이트/토큰", "training chars": "학습 글자 수", "held-out chars": "검증 글자 수",
    "unseen words": "처음 보는 단어", "unseen chars": "처음 보는 글자", "unseen n-grams": "처음 보는 n-gram",
    "bits/char": "비트/글자", "bits/UTF-8 byte": "비트/UTF-8 바이트", "bits/byte": "비트/바이트",
    "bits per byte": "바이트당 비트", "pydocs bits/byte": "pydocs 비트/바이트",
    "AutoTokenizer same ids": "AutoTokenizer와 같은 id", "generate() same tokens": "generate()와 같은 토큰",
    # n-grams and models
    "order": "차수", "context words": "문맥 단어 수", "MLE zero-prob share": "MLE 확률 0 비율", "add-one": "add-one",
    "model": "모델", "models": "모델", "preset": "프리셋", "parameters": "파라미터", "params": "파라미터",
    "trainable params": "학습 파라미터", "trainable share": "학습 파라미터 비율", "layers": "층",
    "width": "너비", "shape": "형태", "attention (heads/kv)": "어텐션 (헤드/kv)", "positional encoding": "위치 인코딩",
    "stated": "공표 값", "counted": "직접 센 값", "N all": "N 전체", "N non-embedding": "N 임베딩 제외",
    "N blocks": "N 블록", "architecture published": "구조 공개", "maker": "개발사", "year": "연도",
    "public": "공개된 사실", "unconfirmed": "미확인", "guide": "가이드", "years here": "여기서의 연도",
    "KV cache": "KV 캐시", "KV cache KiB/token (bf16)": "KV 캐시 KiB/토큰 (bf16)", "no cache": "캐시 없음",
    "weights MiB": "가중치 MiB", "file MB": "파일 MB", "saved (KB)": "저장 크기 (KB)",
    "with CSR MiB (pruned, fp32)": "CSR 저장 MiB (가지치기, fp32)", "peak RSS MB": "최대 RSS MB",
    "train memory GiB (mixed, no activations)": "학습 메모리 GiB (혼합 정밀도, 활성값 제외)",
    # training and scaling
    "steps": "스텝", "train s": "학습 초", "wall s": "경과 초", "CPU s": "CPU 초", "held-out loss": "검증 손실",
    "val loss": "검증 손실", "val loss (nats/token)": "검증 손실 (nats/토큰)",
    "validation loss (nats/char)": "검증 손실 (nats/글자)", "budget C": "예산 C", "tokens D": "토큰 D",
    "Chinchilla tokens": "Chinchilla 토큰", "FLOPs 6ND": "FLOPs 6ND", "FLOPs + attention": "FLOPs + 어텐션",
    "mean rows per step": "스텝당 평균 행 수", "speed-up": "속도 향상", "tokens/s": "토큰/초",
    "tok/s b1": "토큰/초 b1", "tok/s b8": "토큰/초 b8", "decode tok/s (batch 1)": "디코딩 토큰/초 (배치 1)",
    "TTFT ms": "첫 토큰까지 ms", "run": "실행", "mode": "모드", "setting": "설정", "method": "방법",
    # scores
    "accuracy": "정확도", "exact match": "정확 일치", "correct": "정답", "in form": "형식 준수",
    "format kept": "형식 유지", "ends turn": "턴 종료", "distinct answers": "서로 다른 답",
    "distinct-2": "distinct-2", "distinct-3": "distinct-3", "repetition": "반복", "perplexity": "퍼플렉서티",
    "token perplexity": "토큰 퍼플렉서티", "ppl English": "퍼플렉서티 영어", "ppl Korean": "퍼플렉서티 한국어",
    "KL English": "KL 영어", "KL Korean": "KL 한국어", "KL p99 Korean": "KL p99 한국어", "KL to SFT": "SFT 대비 KL",
    "top-1 English": "top-1 영어", "top-1 Korean": "top-1 한국어", "chance": "우연 수준", "95% interval": "95% 구간",
    "95 % CI": "95 % 신뢰구간", "95 % bootstrap CI": "95 % 부트스트랩 구간", "centred [95% CI]": "중심화 [95% 구간]",
    "cloze acc ± stderr": "빈칸 정확도 ± 표준오차", "precision": "정밀도", "recall": "재현율", "verdict": "판정",
    "reward": "보상", "win rate (EM)": "승률 (정확 일치)", "win rate (RM)": "승률 (보상 모델)",
    "probability": "확률", "difference": "차이", "gap": "격차", "mean gap": "평균 격차", "mean |gap|": "평균 |격차|",
    "first more likely": "앞 문장이 더 그럴듯함", "likelihood_diff (nats)": "likelihood_diff (nats)",
    "pct_stereotype": "pct_stereotype", "in-context score": "문맥 내 점수", "induction": "귀납 점수",
    "probe accuracy": "탐침 정확도", "control accuracy": "대조 과제 정확도", "selectivity": "선택성",
    "add plain": "덧셈 그대로", "add reversed": "덧셈 뒤집기", "add scratchpad": "덧셈 풀이 과정",
    "p (renorm)": "p (renorm)", "p (cached scale)": "p (cached scale)", "rank (renorm)": "순위 (renorm)",
    "rank (cached scale)": "순위 (cached scale)", "top token (renorm)": "1위 토큰 (renorm)",
    "residual point": "잔차 지점", "tokens scored": "점수 매긴 토큰", "protocol": "프로토콜",
    # data, PII, retrieval, prompting
    "stage": "단계", "documents": "문서", "removed": "제거", "why": "이유", "type": "유형", "python-docs": "python-docs",
    "korean-law": "korean-law", "TP": "TP", "FP": "FP", "FN": "FN", "anchor": "기준 문장", "paraphrase": "바꿔 쓴 문장",
    "unrelated": "무관한 문장", "cos": "cos", "question": "질문", "gold": "정답", "answer tokens": "답 토큰",
    "closed-book": "검색 없음", "RAG": "RAG", "cited": "인용", "gold anywhere in reply": "답변 어딘가에 정답",
    "recall@1": "recall@1", "recall@5": "recall@5", "recall@10": "recall@10", "MRR": "MRR",
    "technique": "기법", "task": "과제", "prompt": "프롬프트", "prompt tokens": "프롬프트 토큰",
    "generated tokens": "생성 토큰", "instruction": "지시", "our SFT (4.4)": "우리 SFT (4.4)", "SmolLM2": "SmolLM2",
    "axis": "축", "pairs": "쌍", "pairs (first vs second)": "쌍 (앞 대 뒤)", "items": "항목", "n": "n", "true": "정답",
    # serving and misc
    "server": "서버", "clients": "클라이언트", "requests": "요청", "p50 latency (s)": "p50 지연 (초)",
    "p99 latency (s)": "p99 지연 (초)", "5xx": "5xx", "context": "문맥", "measure": "측정", "how": "방법",
    "what": "항목", "value": "값", "": "",
    "gender": "성별", "nationality": "국적", "age": "나이", "region": "지역", "N counted as": "N 세는 방식",
}

# Headers built from a number at run time: (pattern, Korean with the pattern's groups).
PATTERNS = [
    (re.compile(r"tokens for ([\d,]+) chars"), r"글자 \1자의 토큰 수"),
    (re.compile(r"Korean chars in (\d+) tokens"), r"\1토큰에 담기는 한국어 글자"),
    (re.compile(r"USD/M tok at (.+) USD/h"), r"USD/백만 토큰 (\1 USD/시간 기준)"),
    (re.compile(r"kv (\d+)-shot"), r"kv \1-샷"),
    (re.compile(r"d=(\d+)"), r"d=\1"),
    (re.compile(r"D\*/N\* at (\S+) \(approach 2\)"), r"\1에서 D*/N* (방법 2)"),
    (re.compile(r"D/N at (\S+) \(approach 3\)"), r"\1에서 D/N (방법 3)"),
]

_HANGUL = re.compile(r"[\uac00-\ud7a3]")
# words that read the same in a Korean report: names, estimators, metric names as their tools spell them
NAMES = {"kneser", "ney", "smollm2", "python", "docs", "korean", "law", "pydocs", "renorm", "cached", "scale",
         "recall", "distinct", "pct_stereotype", "likelihood_diff", "nats", "chinchilla", "autotokenizer",
         "generate", "add", "one", "bf16", "fp32", "kib", "mib", "gib", "usd", "tok", "flops", "csr", "rss", "sft",
         "cos", "ids"}


def translate(label: str, lang: str) -> str:
    """A header or row label in the report's language (Korean from the glossary; unknown labels unchanged)."""
    if lang != "ko":
        return label
    if label in KO:
        return KO[label]
    for pattern, korean in PATTERNS:
        if pattern.fullmatch(label):
            return pattern.sub(korean, label)
    return label


def english_only(text: str) -> bool:
    """True when a label has no Hangul but an English word that is not a name read the same in Korean."""
    if _HANGUL.search(text):
        return False
    words = re.findall(r"[A-Za-z][A-Za-z0-9_]*", text)
    return any(sum(c.islower() for c in word) >= 3 and word.lower() not in NAMES for word in words)
