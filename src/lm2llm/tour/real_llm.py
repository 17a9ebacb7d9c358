"""Chapter 6.1's second half, "a real LLM on your laptop": SmolLM2-135M-Instruct through our own stack.

The registered model (read from its GGUF file by `lm2llm.gguf`) is described by its card, talks in
English and Korean, shows its next-token distribution, and is measured against the minutes-trained SFT
model of chapter 4.4 on short instructions whose answer form can be checked, and against this chapter's
small tokenizer on how many tokens Korean and English text cost, and on how well it predicts each language
(bits per UTF-8 byte, a unit that does not depend on the tokenizer).
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F

from lm2llm.data import load_documents
from lm2llm.errors import UserError
from lm2llm.gguf.registry import MODELS, gguf_path, resolve_run
from lm2llm.inference.chat import chat_end_ids
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import load_model
from lm2llm.models.accounting import model_param_report
from lm2llm.stats import wilson_interval
from lm2llm.tokenizer import Tokenizer, load_tokenizer
from lm2llm.tour.framework import (
    ChapterContext,
    ChapterResult,
    Claim,
    Sample,
    T,
    Table,
    Text,
    compare_intervals,
)

NAME = "smollm2-135m-instruct"
# The chapters that generate thousands of replies (6.3 prompting, 7.1 RAG) run the model in bfloat16: batch-8
# decoding on this CPU (AVX512-BF16) is about twice as fast as float32, and this chapter proves the float32
# model equal to transformers; a technique's effect is compared within one dtype, so the choice cannot favour one.
BULK_DTYPE = "bfloat16"

# Short instructions whose answer can be checked: (instruction, the answer as a regex). An answer is *correct*
# when the regex appears in it as a word, and *in the asked form* when it is the whole answer.
INSTRUCTIONS = [
    ("What is 7 plus 5? Reply with only the number.", r"12|twelve"),
    ("Write the word 'apple' in capital letters and nothing else.", r"(?-i:APPLE)"),
    ("Answer with yes or no only: is the sun a star?", r"yes"),
    ("What is the capital of France? Answer in one word.", r"paris"),
    ("Answer with yes or no only: is ice cold?", r"yes"),
    ("What is 10 minus 3? Reply with only the number.", r"7|seven"),
    ("Reply with the word 'done' and nothing else.", r"done"),
    ("Answer with yes or no only: can a fish ride a bicycle?", r"no"),
    ("What colour is the sky on a clear day? Answer in one word.", r"blue"),
    ("How many days are in a week? Reply with only the number.", r"7|seven"),
    ("Write the number twenty using digits only.", r"20"),
    ("Reply with only the word 'ok'.", r"ok"),
    ("What is 2 times 3? Reply with only the number.", r"6|six"),
    ("Answer with yes or no only: is water wet?", r"yes"),
    ("What is the opposite of 'hot'? Answer in one word.", r"cold"),
    ("Which is larger, 9 or 4? Reply with only the number.", r"9|nine"),
]
CHATS = ["What is a language model? Answer in two sentences.", "Give me three tips for learning Python.",
         "한국의 수도는 어디인가요?", "안녕하세요! 간단히 자기소개를 해 주세요."]
NEXT_TOKEN_PROMPT = "The capital of France is"


def correct(answer: str, pattern: str) -> bool:
    """The expected answer appears in the answer as a whole word."""
    return re.search(rf"(?<!\w)(?:{pattern})(?!\w)", answer, flags=re.IGNORECASE) is not None


def in_form(answer: str, pattern: str) -> bool:
    """The answer is exactly the asked-for word (case, quotes and a final full stop aside)."""
    return re.fullmatch(pattern, answer.strip().strip("'\"").rstrip(".!").strip(), flags=re.IGNORECASE) is not None


def chat_answers(model: torch.nn.Module, tokenizer, questions: list[str], max_new_tokens: int) -> list[str]:
    """Greedy answers to single-turn questions, rendered with the model's own chat template, as one batch."""
    prompts = [tokenizer.render_chat([{"role": "user", "content": q}], add_generation_prompt=True)[0]
               for q in questions]
    completions = generate_ids(model, prompts, SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0),
                               end_ids=chat_end_ids(tokenizer))
    return [tokenizer.decode(c.token_ids).strip() for c in completions]


def fertility(tokenizer: Tokenizer, texts: list[str]) -> float:
    """Tokens per character."""
    return sum(len(tokenizer.encode(t)) for t in texts) / sum(len(t) for t in texts)


def bits_per_byte(model: torch.nn.Module, tokenizer, texts: list[str], tokens: int) -> float:
    """The model's cross-entropy on the first `tokens` tokens of `texts`, per UTF-8 byte of the predicted tokens."""
    ids = tokenizer.encode("\n\n".join(texts))[:tokens]
    with torch.no_grad():
        logits = model(torch.tensor([ids]))[0][0, :-1].float()
    nats = F.cross_entropy(logits, torch.tensor(ids[1:]), reduction="sum").item()
    return nats / math.log(2) / sum(len(tokenizer.token_bytes(i)) for i in ids[1:])


def instruction_claim(hits: dict[str, int], total: int, statement: Text, what: Text) -> Claim:
    """SmolLM2 against our SFT model on `hits` of `total`: holds when SmolLM2's 95 % interval lies above
    the other's, fails when below, and is inconclusive when they overlap."""
    (smol, smol_ci), (sft, sft_ci) = ((k, wilson_interval(k, total)) for k in hits.values())
    text = [f"{what.get(lang)}: SmolLM2 {smol}/{total} ({ci_word} {smol_ci[0]:.2f}–{smol_ci[1]:.2f}), {sft_word} "
            f"{sft}/{total} ({sft_ci[0]:.2f}–{sft_ci[1]:.2f}); {rule}"
            for lang, ci_word, sft_word, rule in (
                ("en", "95 % CI", "our SFT model", "chance ≈ 0 (free text); decided only when the intervals do not overlap"),
                ("ko", "95 % 신뢰구간", "우리 SFT 모델", "우연 수준 ≈ 0 (자유 텍스트); 두 구간이 겹치지 않을 때만 판정"))]
    return Claim(statement, T(*text), compare_intervals(smol_ci, sft_ci), chance=0.0, interval=smol_ci)


def real_llm_section(ctx: ChapterContext, small_tokenizer: Tokenizer) -> tuple[list[Claim], list[Table], list[Sample], dict]:
    """The section's claims, tables, samples and metrics; an absent model package becomes a note."""
    try:
        run = resolve_run(NAME)
    except UserError as exc:
        note = T(f"SmolLM2 section skipped: {exc}", f"SmolLM2 절은 건너뜀: {exc}")
        return [], [], [Sample(T("A real LLM on your laptop", "노트북 위의 진짜 LLM"), note.get(ctx.lang))], {}
    model, tokenizer = load_model(run).eval(), load_tokenizer(run)
    config = model.config
    report = model_param_report(NAME, model)
    n = report.total
    kv_per_token = 2 * config.n_layer * config.n_kv_head * config.head_dim * 4
    card = Table(T("SmolLM2-135M-Instruct: the model card, counted from the imported model",
                   "SmolLM2-135M-Instruct 모델 카드 (가져온 모델에서 직접 셈)"), ["what", "value"], [
        *[[f"parameters: {part}", f"{count:,}"] for part, count in report.components.items()],
        ["parameters: total", f"{n:,}"],
        ["layers / d_model / d_ff", f"{config.n_layer} / {config.d_model} / {config.d_ff}"],
        ["query heads / key-value heads (GQA)", f"{config.n_head} / {config.n_kv_head}"],
        ["vocabulary / context", f"{config.vocab_size:,} / {config.context_length:,}"],
        ["weights in fp32 / bf16", f"{4 * n / 2**20:,.0f} MiB / {2 * n / 2**20:,.0f} MiB"],
        ["GGUF file (Q4_1 with a Q8_0 embedding)", f"{gguf_path(NAME).stat().st_size / 2**20:,.0f} MiB"],
        ["KV cache per token (fp32) / at full context", f"{kv_per_token / 1024:.0f} KiB / "
                                                        f"{kv_per_token * config.context_length / 2**20:,.0f} MiB"],
        ["licence", "Apache-2.0 (" + MODELS[NAME].description.split("(")[1].split(")")[0] + ")"],
    ])
    ctx.progress(4.2, 6)
    new_tokens = 40 if ctx.quick else 80
    transcript = chat_answers(model, tokenizer, CHATS, new_tokens)
    samples = [Sample(T("Chatting with SmolLM2 (greedy, our engine)", "SmolLM2와의 대화 (greedy, 우리 엔진)"),
                      "\n\n".join(f"> {q}\n{a}" for q, a in zip(CHATS, transcript, strict=True)))]
    with torch.no_grad():
        logits = model(torch.tensor([tokenizer.encode(NEXT_TOKEN_PROMPT)]))[0][0, -1]
    probs = torch.softmax(logits.float(), -1)
    top = torch.topk(probs, 8)
    next_token = Table(T(f"Next-token probabilities after {NEXT_TOKEN_PROMPT!r}",
                         f"{NEXT_TOKEN_PROMPT!r} 다음 토큰의 확률"), ["token", "probability"],
                       [[repr(tokenizer.decode([i])), f"{p:.3f}"] for p, i in zip(top.values.tolist(), top.indices.tolist(),
                                                                                 strict=True)])
    ctx.progress(4.6, 6)
    questions = [q for q, _ in INSTRUCTIONS]
    sft_dir = ctx.chapter_dir("4.4") / "runs" / "full"
    answers = {"SmolLM2-135M-Instruct": chat_answers(model, tokenizer, questions, 16),
               "our SFT model (4.4)": chat_answers(load_model(sft_dir).eval(), load_tokenizer(sft_dir), questions, 16)}
    scores = {check.__name__: {name: sum(check(a, p) for a, (_, p) in zip(said, INSTRUCTIONS, strict=True))
                               for name, said in answers.items()} for check in (correct, in_form)}
    instructions = Table(T("Short instructions with a checkable answer (greedy): correct, and in the asked form",
                           "답을 확인할 수 있는 짧은 지시 (greedy): 맞았는가, 요청한 형식인가"),
                         ["instruction", "SmolLM2", "correct", "in form", "our SFT (4.4)", "correct", "in form"],
                         [[q, a1, correct(a1, p), in_form(a1, p), a2, correct(a2, p), in_form(a2, p)]
                          for (q, p), a1, a2 in zip(INSTRUCTIONS, *answers.values(), strict=True)])
    ctx.progress(5.2, 6)
    english = load_documents("python-docs", limit=260)[200:]
    korean = load_documents("korean-law")[4:]
    fert = {"SmolLM2 (49,152 tokens, English-centred)": (fertility(tokenizer, english), fertility(tokenizer, korean)),
            f"this chapter's BPE ({small_tokenizer.vocab_size:,} tokens)": (fertility(small_tokenizer, english),
                                                                           fertility(small_tokenizer, korean))}
    fertility_table = Table(T("Tokens per character on held-out text", "보류 텍스트의 글자당 토큰 수"),
                            ["tokenizer", "English (python-docs)", "Korean (korean-law)", "Korean ÷ English"],
                            [[name, f"{en:.3f}", f"{ko:.3f}", f"{ko / en:.1f}×"] for name, (en, ko) in fert.items()])
    smol_en, smol_ko = fert["SmolLM2 (49,152 tokens, English-centred)"]
    scored = 128 if ctx.quick else 1024
    bpb = {"en": bits_per_byte(model, tokenizer, english, scored), "ko": bits_per_byte(model, tokenizer, korean, scored)}
    total = len(INSTRUCTIONS)
    claims = [instruction_claim(scores["correct"], total,
                                T("A pre-trained, instruction-tuned LLM answers short questions correctly where a model "
                                  "fine-tuned for minutes on a small corpus does not.",
                                  "사전학습과 지시 학습을 거친 LLM은, 작은 말뭉치로 몇 분 학습한 모델이 못 맞히는 짧은 질문에 "
                                  "바르게 답한다."), T("correct", "정답")),
              instruction_claim(scores["in_form"], total,
                                T("It also gives the answer in the form the instruction asks for (\"only the number\").",
                                  "지시가 요구한 형식(\"숫자만\")으로도 답한다."), T("in the asked form", "요청한 형식")),
              Claim(T("A vocabulary learned mostly from English spends several times more tokens on a Korean character "
                      "than on an English one.",
                      "주로 영어에서 배운 어휘는 한국어 글자 하나에 영어 글자보다 몇 배 많은 토큰을 쓴다."),
                    T(f"SmolLM2: {smol_ko:.2f} tokens per Korean character vs {smol_en:.2f} per English character "
                      f"({smol_ko / smol_en:.1f}×); holds above 2×",
                      f"SmolLM2: 한국어 글자당 {smol_ko:.2f} 토큰, 영어 글자당 {smol_en:.2f} 토큰 ({smol_ko / smol_en:.1f}배); "
                      "2배를 넘으면 성립"),
                    smol_ko > 2 * smol_en),
              Claim(T("Beyond the cost in tokens, SmolLM2 predicts Korean text worse than English, byte for byte: its "
                      "training data is mostly English. (Chapter 1.1's character n-gram, trained on equal amounts of "
                      "both, needs fewer bits per byte for Korean: the gap is the data's, not the script's.)",
                      "토큰 비용뿐 아니라 예측도 한국어가 영어보다 바이트당 나쁘다: 학습 데이터가 대부분 영어이기 때문이다. "
                      "(두 언어를 같은 양으로 학습한 1.1장의 문자 n-gram은 한국어에 바이트당 더 적은 비트를 쓴다: 격차는 "
                      "문자 체계가 아니라 데이터에서 온다.)"),
                    T(f"held-out text, first {scored} tokens each: Korean {bpb['ko']:.2f} vs English {bpb['en']:.2f} "
                      "bits per UTF-8 byte; holds when Korean is higher",
                      f"보류 텍스트 앞 {scored}토큰씩: 한국어 {bpb['ko']:.2f} 대 영어 {bpb['en']:.2f} 비트/UTF-8 바이트; "
                      "한국어가 높으면 성립"),
                    bpb["ko"] > bpb["en"])]
    metrics = {"bits_per_byte": bpb, "smollm2_params": n, "instructions": scores, "instruction_total": total, "fertility": fert,
               "transcript": dict(zip(CHATS, transcript, strict=True))}
    return claims, [card, next_token, instructions, fertility_table], samples, metrics


def load_real_llm(ctx: ChapterContext) -> tuple[torch.nn.Module, Tokenizer] | ChapterResult:
    """SmolLM2 and its tokenizer for a chapter about it, or the chapter's result saying why it was skipped."""
    try:
        run = resolve_run(NAME)
    except UserError as exc:
        note = T(f"Chapter skipped: {exc}", f"장을 건너뜀: {exc}")
        return ChapterResult(note, samples=[Sample(T("SmolLM2 missing", "SmolLM2 없음"), note.get(ctx.lang))])
    return load_model(run).eval(), load_tokenizer(run)
