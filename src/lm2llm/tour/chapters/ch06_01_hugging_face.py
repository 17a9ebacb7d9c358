"""Chapter 6.1, Hugging Face: our models and the ecosystem's, weight for weight.

A GPT trained here is exported as a transformers checkpoint; `AutoTokenizer` and
`AutoModelForCausalLM` load it and must give the same token ids, the same logits and the same greedy
text as our own code, and importing it back must give the original logits. Then the other direction:
the published all-MiniLM-L6-v2 sentence-embedding weights run in *our* BERT and must give
sentence-transformers' embeddings, which place similar sentences closer, in English and in Korean.
Last, a real LLM on your laptop (`lm2llm.tour.real_llm`): SmolLM2-135M-Instruct, read from its GGUF
file by our own code, beside the minutes-trained SFT model of chapter 4.4.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from lm2llm.data import load_documents
from lm2llm.data.shards import ShardWriter, TokenShards
from lm2llm.embeddings import SentenceEncoder, minilm_dir
from lm2llm.hf import export_run, import_dir
from lm2llm.hf.quiet import quiet_transformers
from lm2llm.inference.engine import generate_ids
from lm2llm.inference.sampling import SamplingConfig
from lm2llm.models import build_model, load_model, save_model
from lm2llm.tokenizer.hf_bpe import BPETokenizer
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Sample,
    T,
    Table,
    torch_threads,
)
from lm2llm.tour.real_llm import real_llm_section
from lm2llm.training.config import fine_tuning
from lm2llm.training.data import ShardBatches
from lm2llm.training.objectives import CausalLM
from lm2llm.training.trainer import Trainer

PROMPTS = ["Return the", "대한민국은", "The default value"]
# (anchor, paraphrase, unrelated) in each language
TRIPLES = [
    ("A man is playing a guitar.", "Someone is playing music on a guitar.", "The stock market fell sharply today."),
    ("How do I open a file in Python?", "Reading a file with Python", "My cat sleeps all afternoon."),
    ("고양이가 소파 위에서 자고 있다.", "소파에서 고양이 한 마리가 잠들어 있다.", "주식 시장이 오늘 크게 떨어졌다."),
    ("오늘 날씨가 정말 좋다.", "오늘은 하늘이 맑고 화창하다.", "이 함수는 리스트를 정렬한다."),
]


def yes_no(value: bool) -> str:
    """A verdict word for Korean prose (Python's True/False read as code there)."""
    return "예" if value else "아니오"


def train_small_gpt(run: Path, quick: bool) -> BPETokenizer:
    """A small GPT on English docstrings and Korean law text, saved as a run (model + tokenizer)."""
    texts = load_documents("python-docs", limit=400 if quick else 3000) + load_documents("korean-law", limit=4)
    tokenizer = BPETokenizer.train(texts, 512 if quick else 2000)
    stream = [i for text in texts for i in tokenizer.encode(text) + [tokenizer.eos_id]]
    with tempfile.TemporaryDirectory() as tmp:
        writer = ShardWriter(Path(tmp), tokenizer.vocab_size)
        cut = len(stream) * 9 // 10
        writer.write("train", stream[:cut])
        writer.write("val", stream[cut:])
        writer.close()
        steps = 80 if quick else 1000
        torch.manual_seed(0)
        model = build_model("gpt", vocab_size=tokenizer.vocab_size, context_length=64, n_layer=2, d_model=64, n_head=4)
        data = ShardBatches(TokenShards(tmp), block_size=64, batch_size=16, seed=0, eval_batches=2)
        cfg = fine_tuning(steps, 3e-3, min_lr=3e-4, batch_size=16, eval_every=steps, eval_batches=2)
        with torch_threads(1):  # a two-layer, 64-wide model only waits on a second thread
            Trainer(model, CausalLM(), data, cfg).fit()
    save_model(model.eval(), run)
    tokenizer.save(run)
    return tokenizer


def run(ctx: ChapterContext) -> ChapterResult:
    import transformers

    quick = ctx.quick
    with tempfile.TemporaryDirectory() as tmp:
        run_dir, hf_dir, back_dir = Path(tmp) / "run", Path(tmp) / "hf", Path(tmp) / "back"
        tokenizer = train_small_gpt(run_dir, quick)
        ctx.progress(1, 6)
        exported = export_run(run_dir, hf_dir)
        ours = load_model(run_dir).eval()
        with quiet_transformers():  # its "Loading weights" bar would interleave with the tour's progress
            hf_tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir, trust_remote_code=False)
            hf_model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, trust_remote_code=False).eval()
        import_dir(hf_dir, back_dir)
        back = load_model(back_dir).eval()
        rows, same_ids, same_text, max_diff, back_diff = [], True, True, 0.0, 0.0
        samples = []
        for prompt in PROMPTS:
            ids = tokenizer.encode(prompt)
            their_ids = hf_tokenizer(prompt, add_special_tokens=False)["input_ids"]
            same_ids &= ids == their_ids
            x = torch.tensor([ids])
            with torch.no_grad():
                logits = ours(x)[0]
                max_diff = max(max_diff, (logits - hf_model(x).logits).abs().max().item())
                back_diff = max(back_diff, (logits - back(x)[0]).abs().max().item())
                hf_out = hf_model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=24,
                                           pad_token_id=tokenizer.pad_id, eos_token_id=tokenizer.eos_id)
            hf_new = [t for t in hf_out[0, len(ids):].tolist() if t != tokenizer.pad_id]
            hf_new = hf_new[:-1] if hf_new and hf_new[-1] == tokenizer.eos_id else hf_new
            our_new = generate_ids(ours, [ids], SamplingConfig(max_new_tokens=24, temperature=0),
                                   end_ids=[tokenizer.eos_id])[0].token_ids
            our_text, hf_text = tokenizer.decode(our_new), hf_tokenizer.decode(hf_new)
            same_text &= our_new == hf_new and our_text == hf_text
            rows.append([prompt, len(ids), ids == their_ids, our_new == hf_new])
            samples.append(Sample(T(f"Greedy continuation of {prompt!r}", f"{prompt!r}의 greedy 이어 쓰기"),
                                  f"lm2llm:       {prompt}{our_text}\ntransformers: {prompt}{hf_text}"))
    ctx.progress(2, 6)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    encoder = SentenceEncoder()
    sentences = [s for triple in TRIPLES for s in triple]
    embeddings = encoder.encode(sentences)
    if quick:  # the encoder itself against transformers' BertModel (sentence-transformers costs seconds to import)
        reference_name = "transformers BertModel hidden states"
        with quiet_transformers():
            reference_model = transformers.AutoModel.from_pretrained(minilm_dir(), trust_remote_code=False).eval()
        embed_diff = 0.0
        with torch.no_grad():
            for ids in encoder.token_ids(sentences):  # one at a time: no padding to line up
                x = torch.tensor([ids])
                gap = (encoder.model.encode(x) - reference_model(input_ids=x).last_hidden_state).abs().max().item()
                embed_diff = max(embed_diff, gap)
    else:
        from sentence_transformers import SentenceTransformer

        reference_name = "sentence-transformers embeddings"
        reference = SentenceTransformer(str(minilm_dir()), device="cpu").encode(sentences, convert_to_tensor=True)
        embed_diff = (embeddings - reference).abs().max().item()
    ctx.progress(3, 6)
    sim_rows, closer = [], {"en": True, "ko": True}
    for index, (anchor, similar, unrelated) in enumerate(TRIPLES):
        a, s, u = embeddings[3 * index: 3 * index + 3]
        near, far = float(a @ s), float(a @ u)
        language = "ko" if any("\uac00" <= ch <= "\ud7a3" for ch in anchor) else "en"
        closer[language] &= near > far
        sim_rows.append([anchor, similar, round(near, 3), unrelated, round(far, 3)])

    interop = Table(T("Export → transformers: the same ids and the same greedy text",
                      "내보내기 → transformers: 같은 토큰 id, 같은 greedy 결과"),
                    ["prompt", "tokens", "AutoTokenizer same ids", "generate() same tokens"], rows)
    figures_table = Table(T("Measured agreement", "측정한 일치도"), ["what", "value"], [
        ["exported architecture", exported["architecture"]],
        ["max |logit difference| ours vs AutoModelForCausalLM (fp32)", f"{max_diff:.2e}"],
        ["max |logit difference| after import-hf", f"{back_diff:.2e}"],
        [f"max |difference| ours vs {reference_name}", f"{embed_diff:.2e}"],
        ["embedding width", encoder.dim],
    ])
    similarity = Table(T("MiniLM in our BERT: cosine similarity", "우리 BERT에 올린 MiniLM: 코사인 유사도"),
                       ["anchor", "paraphrase", "cos", "unrelated", "cos"], sim_rows)
    claims = [
        Claim(T("A model trained here loads in transformers with AutoTokenizer/AutoModelForCausalLM and behaves the same.",
                "여기서 학습한 모델을 transformers의 AutoTokenizer/AutoModelForCausalLM으로 불러와도 똑같이 동작한다."),
              T(f"ids equal: {same_ids}; greedy text equal: {same_text}; max logit gap {max_diff:.1e}",
                f"토큰 id 일치: {yes_no(same_ids)}; greedy 결과 일치: {yes_no(same_text)}; 최대 logit 차 {max_diff:.1e}"),
              same_ids and same_text and max_diff < 1e-4),
        Claim(T("Published pre-trained weights run in our own BERT and give the reference library's embeddings.",
                "공개된 사전학습 가중치를 우리 BERT에 올려도 참조 라이브러리와 같은 임베딩이 나온다."),
              T(f"max difference from {reference_name}: {embed_diff:.1e}",
                f"{reference_name}와의 최대 차이: {embed_diff:.1e}"),
              embed_diff < 1e-5),
        Claim(T("Sentence embeddings put paraphrases closer than unrelated sentences, in English and in Korean.",
                "문장 임베딩은 영어와 한국어 모두에서 뜻이 같은 문장을 무관한 문장보다 가깝게 둔다."),
              T(f"paraphrase closer in every English pair: {closer['en']}; every Korean pair: {closer['ko']}",
                f"영어 쌍 모두 더 가까움: {yes_no(closer['en'])}; 한국어 쌍 모두: {yes_no(closer['ko'])}"),
              closer["en"] and closer["ko"]),
    ]
    ctx.progress(4, 6)
    llm_claims, llm_tables, llm_samples, llm_metrics = real_llm_section(ctx, tokenizer)
    ctx.progress(6, 6)
    summary = T(f"Export to transformers gives the same text (logit gap {max_diff:.0e}); MiniLM in our BERT matches "
                f"{reference_name} to {embed_diff:.0e}.",
                f"transformers로 내보내도 같은 글이 나온다 (logit 차 {max_diff:.0e}); 우리 BERT의 MiniLM은 "
                f"{reference_name}와 {embed_diff:.0e} 이내로 같다.")
    return ChapterResult(summary, claims=claims + llm_claims, tables=[interop, figures_table, similarity, *llm_tables],
                         samples=samples + llm_samples,
                         metrics={"logit_diff": max_diff, "import_diff": back_diff, "embedding_diff": embed_diff,
                                  "embedding_reference": reference_name,
                                  "same_ids": same_ids, "same_text": same_text, "closer": closer,
                                  "export": exported, "real_llm": llm_metrics})


CHAPTER = Chapter("6.1", T("Hugging Face", "Hugging Face"), run, needs=("4.4",))
