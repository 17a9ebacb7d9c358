"""Chapters 4.3 → 4.4 → 4.5 as one pipeline, read from the session's quick tour (no chapter runs again here)."""

import pytest

from lm2llm.data.shards import TokenShards
from lm2llm.errors import UserError
from lm2llm.finetune.tasks import make_suite
from lm2llm.models import load_model
from lm2llm.tokenizer import load_tokenizer
from lm2llm.tour.framework import ChapterContext, slug_of
from lm2llm.tour.registry import all_chapters
from tests.conftest import chapter_result


def test_pipeline_chapters_declare_what_they_read():
    needs = {c.id: c.needs for c in all_chapters()}
    assert needs["4.4"] == ("4.3",) and needs["4.5"] == ("4.4",)


def test_a_chapter_finds_the_folder_of_another(tmp_path):
    ctx = ChapterContext(tmp_path / slug_of("4.4"), quick=True, lang="en")
    assert ctx.chapter_dir("4.3") == tmp_path / "ch04_03"


@pytest.mark.parametrize(("chapter_id", "missing"), [("4.4", "4.3"), ("4.5", "4.4")])
def test_a_missing_earlier_run_is_a_clear_error(tmp_path, chapter_id, missing):
    chapter = next(c for c in all_chapters() if c.id == chapter_id)
    ctx = ChapterContext(tmp_path / chapter.slug, quick=True, lang="en")
    with pytest.raises(UserError, match=missing) as caught:
        chapter.run(ctx)
    assert f"--only {missing}" in caught.value.hint


def test_chapter_4_3_compares_ngram_lstm_and_gpt_and_saves_the_gpt(quick_tour):
    result = chapter_result(quick_tour, "4.3")
    curves = result.metrics["curves"]
    assert set(curves) == {"LSTM", "GPT"}
    for curve in curves.values():  # each improves while it trains
        assert curve[-1]["val_loss"] < curve[0]["val_loss"]
    assert 0 < result.metrics["ngram"]["val_bpb"] < 8
    assert len(result.claims) == 3
    # the same tokens: both networks saw as many training tokens, every model is scored on the same held-out ones
    stats = result.metrics["stats"]
    assert stats["GPT"]["tokens"] == stats["LSTM"]["tokens"] == result.metrics["steps"] * result.metrics["tokens_per_step"]
    bpb = result.metrics["bpb"]
    assert set(bpb) == {"unigram", "trigram", "LSTM", "GPT"} and bpb["GPT"] < bpb["unigram"]
    assert all(low <= bpb[name] <= high for name, (low, high) in result.metrics["intervals"].items())
    assert all(claim.interval is not None for claim in result.claims)  # paired bootstrap over held-out documents
    chapter_dir = quick_tour.out_dir / "ch04_03"
    assert (chapter_dir / "val_loss.png").is_file()
    run = chapter_dir / result.metrics["runs"]["GPT"]
    model, tokenizer = load_model(run), load_tokenizer(run)  # an ordinary run: lm2llm chat/sft can read it
    assert model.config.vocab_size == tokenizer.vocab_size
    assert (run / "config.json").is_file() and (run / "metrics.jsonl").is_file()
    assert tokenizer.render_chat([{"role": "user", "content": "안녕"}], add_generation_prompt=True)[0]


def test_chapter_4_4_fine_tunes_the_pretrained_gpt(quick_tour):
    result = chapter_result(quick_tour, "4.4")
    metrics = result.metrics
    assert metrics["base"] == "ch04_03/runs/gpt"
    runs = metrics["runs"]
    assert set(runs) == {"full", "lora", "lora_no_tokens", "scratch"}
    for name, run in runs.items():
        assert (quick_tour.out_dir / "ch04_04" / run["dir"] / "model.safetensors").is_file(), name
        assert 0 <= run["after"]["accuracy"] <= 1 and 0 <= run["after"]["ended_turn"] <= 1
        assert 1 <= run["after"]["distinct_answers"] <= run["after"]["n"]
    assert runs["lora"]["trainable"] < runs["full"]["trainable"] == runs["full"]["total"]
    d_model = load_model(quick_tour.out_dir / metrics["base"]).config.d_model
    # the LoRA run also trains the four chat tokens' embedding rows (<|system|>, <|user|>, <|assistant|>, <|end|>)
    assert metrics["chat_token_params"] == runs["lora"]["trainable"] - runs["lora_no_tokens"]["trainable"] == 4 * d_model
    assert 0 < runs["lora"]["adapter_bytes"] < metrics["model_bytes"]
    assert len(result.claims) == 4
    base = metrics["before_qa_page"]  # the fair "before": the base asked in the Q&A page form it was pre-trained on
    assert 0 <= base["accuracy"] <= 1 and base["n"] == runs["full"]["after"]["n"]
    chance = metrics["chance"]
    for claim in (result.claims[i] for i in (0, 1, 3)):  # exact-match claims carry chance and interval
        assert claim.chance == chance and claim.interval[0] <= claim.interval[1]
    floor = {name: claim.interval[0] <= chance for name, claim in (("full", result.claims[0]), ("lora", result.claims[3]))}
    if floor["full"]:  # nothing above chance: neither "LoRA comes close" nor "SFT helps" can be a ✓
        assert result.claims[3].holds is None and result.claims[0].holds is not True
    assert result.claims[2].kind == "demonstration"  # LoRA's small share is set by its rank
    assert "base (Q&A page form):" in result.samples[0].text and "SFT:" in result.samples[0].text


def test_chapter_4_5_aligns_the_sft_model(quick_tour):
    result = chapter_result(quick_tour, "4.5")
    metrics = result.metrics
    assert metrics["sft_run"] == "ch04_04/runs/full"
    assert metrics["tasks"] == chapter_result(quick_tour, "4.4").metrics["tasks"]
    assert len(metrics["ppo_history"]) == metrics["settings"]["ppo_steps"]
    for name in ("ppo", "dpo"):
        compared = metrics["compare"][name]
        assert 0 <= compared["win_rate_reward"] <= 1 and 0 <= compared["exact_match"] <= 1
        assert compared["kl_to_sft"] == pytest.approx(compared["kl_to_sft"])  # a number, not NaN
    ppo = metrics["compare"]["ppo"]
    if ppo["exact_losses"] > ppo["exact_wins"]:  # fewer right answers: never a ✓ for PPO, whatever its reward
        assert result.claims[2].holds is not True
    assert metrics["reward_hacking"]["ppo"] == (ppo["reward"] > ppo["reward_sft"] and ppo["exact_losses"] > ppo["exact_wins"])
    judge = metrics["length_judge"]  # the reward model is checked against a judge that reads only length
    assert judge["prefers"] in ("shorter", "longer") and 0 <= judge["accuracy"] <= 1
    assert sum(k["pairs"] for k in metrics["reward_model_per_kind"].values()) == metrics["reward_model"]["held_out_pairs"]
    assert all(c.chance == 0.5 and c.interval is not None for c in result.claims if c.chance is not None)
    assert [row[0] for row in result.tables[0].rows] == ["SFT", "PPO", "DPO"]
    assert (quick_tour.out_dir / "ch04_05" / "rlhf_curves.png").is_file()


def test_held_out_prompts_never_reach_pre_training(quick_tour):
    """The prompts 4.4 and 4.5 score on are absent from every token 4.3's models were trained on."""
    tasks = chapter_result(quick_tour, "4.4").metrics["tasks"]
    n_test = chapter_result(quick_tour, "4.4").metrics["settings"]["n_test"]
    assert n_test <= chapter_result(quick_tour, "4.3").metrics["corpus"]["qa_reserve"]
    data = quick_tour.out_dir / "ch04_03" / "data"
    shards, tokenizer = TokenShards(data), load_tokenizer(data / "tokenizer")
    text = tokenizer.decode(shards.arrays["train"].tolist())
    assert "\nA: " in text  # the Q&A pages are there
    _, held_out = make_suite(0, n_test, seed=0, tasks=tasks)
    assert not [r.prompt for r in held_out if r.prompt in text]


def test_chapter_4_3_says_why_the_trigram_holds_on_prose():
    """Full mode decides the trigram claim on the Q&A pages and explains the prose when the network does not win
    there (with the extrapolation while the network loses on all the text); nothing to explain once it wins."""
    from lm2llm.tour.chapters.ch04_03_pretraining import why_the_trigram_holds

    by_source = {"GPT": {"python-docs": 2.47, "Q&A": 0.58}, "trigram": {"python-docs": 2.00, "Q&A": 0.74}}
    curve = [{"step": 300, "val_bpb": 2.0}, {"step": 600, "val_bpb": 1.71}]
    losing = why_the_trigram_holds(False, True, False, False, "GPT", by_source, curve, 0.7, 1.46)
    assert "2.47 vs 2.00" in losing.en and "0.58 vs 0.74" in losing.en and "extrapolation" in losing.en
    assert "2.47 대 2.00" in losing.ko
    level = why_the_trigram_holds(False, True, None, True, "GPT", by_source, curve, 1.4, 1.46)
    assert "python-docs" in level.en and "extrapolation" not in level.en  # it already wins on all the text
    assert why_the_trigram_holds(False, True, True, True, "GPT", by_source, curve, 1.4, 1.46).en == ""
    assert why_the_trigram_holds(True, True, False, False, "GPT", by_source, curve, 0.5, 1.7).en == ""
    assert "Quick mode" in why_the_trigram_holds(True, False, False, False, "GPT", by_source, curve, 0.5, 1.7).en
