"""Scaling laws and emergence (lm2llm.scale): the fitters recover known constants; sweeps and probes run."""

from __future__ import annotations

import numpy as np
import pytest

from lm2llm.errors import UserError
from lm2llm.scale import tasks
from lm2llm.scale.chinchilla import BESIROGLU_2024, HOFFMANN_2022, Parametric, fit_parametric
from lm2llm.scale.isoflop import approach2, isoflop_minimum
from lm2llm.scale.powerlaw import bootstrap, fit_power_law
from lm2llm.scale.probes import difference_interval
from lm2llm.scale.shapes import CONVENTIONS, nearest_shape, param_counts, shape_for_width
from lm2llm.stats import Z90, wilson_interval

CONSTANTS = ("E", "A", "B", "alpha", "beta")


def chinchilla_grid(truth: Parametric) -> tuple[np.ndarray, np.ndarray]:
    n, d = np.meshgrid(np.geomspace(1e7, 1e10, 6), np.geomspace(1e9, 1e12, 5))
    return n.ravel(), d.ravel()


@pytest.mark.parametrize("truth", [HOFFMANN_2022, BESIROGLU_2024], ids=["hoffmann", "besiroglu"])
def test_parametric_fit_recovers_published_constants(truth):
    n, d = chinchilla_grid(truth)
    fit, _ = fit_parametric(n, d, truth.loss(n, d))
    for name in CONSTANTS:
        assert getattr(fit, name) == pytest.approx(getattr(truth, name), rel=1e-3), name


def test_parametric_fit_with_noise_keeps_the_exponents_close():
    n, d = chinchilla_grid(HOFFMANN_2022)
    noisy = HOFFMANN_2022.loss(n, d) * np.exp(np.random.default_rng(0).normal(0, 0.002, len(n)))
    fit, _ = fit_parametric(n, d, noisy)
    assert fit.alpha == pytest.approx(0.34, rel=0.1) and fit.beta == pytest.approx(0.28, rel=0.1)


def test_compute_optimal_split_spends_the_budget_at_the_minimum():
    c = 1e21
    n, d = HOFFMANN_2022.compute_optimal(c)
    assert 6 * n * d == pytest.approx(c)
    best = HOFFMANN_2022.loss(n, d)
    assert all(HOFFMANN_2022.loss(n * f, c / (6 * n * f)) > best for f in (0.9, 1.1))


def test_power_law_and_bootstrap():
    x = np.geomspace(1e3, 1e6, 12)
    law = fit_power_law(x, 5 * x**-0.3)
    assert law.exponent == pytest.approx(-0.3) and law.coefficient == pytest.approx(5)
    rng = np.random.default_rng(1)
    rows = [(xi, 5 * xi**-0.3 * np.exp(rng.normal(0, 0.01))) for xi in x]
    low, high = bootstrap(rows, lambda r: {"p": fit_power_law(*zip(*r, strict=True)).exponent}, samples=200)["p"]
    assert low < -0.3 < high
    with pytest.raises(ValueError):
        fit_power_law([1.0, 1.0], [2.0, 3.0])


def test_isoflop_minimum_and_approach2_on_chinchilla_data():
    minimum = isoflop_minimum(1.0, np.exp([1.0, 2.0, 3.0, 4.0]), [(v - 2.5) ** 2 + 1 for v in (1.0, 2.0, 3.0, 4.0)])
    assert np.log(minimum.params) == pytest.approx(2.5) and minimum.loss == pytest.approx(1) and minimum.interior
    # the full sweep's 1e11 curve: a flat large-model arm must not pull the vertex out of the bowl (w16–w48)
    bowl = isoflop_minimum(1e11, [12528, 31200, 84288, 136960, 391008], [4.113, 4.014, 4.679, 5.238, 5.374])
    assert bowl.interior and 12528 < bowl.params < 84288
    assert not isoflop_minimum(1.0, np.exp([1.0, 2.0, 3.0]), [1.0, 2.0, 3.0]).interior  # best at the edge
    runs = []
    for c in (1e19, 1e20, 1e21, 1e22):
        n_opt, _ = HOFFMANN_2022.compute_optimal(c)
        for f in np.geomspace(0.25, 4, 9):
            runs.append((c, n_opt * f, float(HOFFMANN_2022.loss(n_opt * f, c / (6 * n_opt * f)))))
    fit = approach2(runs)
    expected = HOFFMANN_2022.beta / (HOFFMANN_2022.alpha + HOFFMANN_2022.beta)
    assert fit.params_law.exponent == pytest.approx(expected, abs=0.02)
    assert fit.params_law.exponent + fit.tokens_law.exponent == pytest.approx(1)


def test_backtest_picks_the_approach_that_predicted_the_largest_fitted_budget_best():
    from lm2llm.scale.analysis import backtest, predict_optimum

    def runs_of(law: Parametric) -> list[dict]:
        runs = []
        for c in (1e19, 1e20, 1e21):
            n_opt, _ = law.compute_optimal(c)
            for f in np.geomspace(0.25, 4, 5):
                n = n_opt * f
                runs.append({"budget": c, "params": {"all": n}, "tokens": c / (6 * n), "val_loss": float(law.loss(n, c / (6 * n)))})
        return runs

    prediction = predict_optimum(runs_of(HOFFMANN_2022), 1e22)
    exact = prediction["backtest"]  # runs that follow L(N, D) exactly: approach 3 predicts them
    assert abs(exact["approach 3"]) < 1e-3 and abs(exact["approach 3"]) < abs(exact["approach 2"])
    assert prediction["optimum_from"] == "approach 3"
    assert prediction["approach3_params"] == pytest.approx(HOFFMANN_2022.compute_optimal(1e22)[0], rel=1e-2)
    assert backtest(runs_of(HOFFMANN_2022)[:10]) == {}  # two budgets: nothing to back-test on


def test_tour_verdicts_of_chapter_3_2_need_the_difference_beyond_its_interval():
    from lm2llm.tour.chapters.ch03_02_emergence import CHANCE, _beats, _smooth_vs_sharp

    assert _beats(0.40, 0.12, 100, CHANCE)[0] is True
    assert _beats(0.12, 0.40, 100, CHANCE)[0] is False
    assert _beats(0.20, 0.14, 100, CHANCE)[0] is None  # inside the interval
    assert _beats(0.0, 0.0, 100, 0.0) == (None, (0.0, 0.0))  # both at the floor
    def sizes(smooth, sharp):
        return [{"kv": {"8": {"logprob": v, "logprob_se": 0.02, "exact": e, "n": 100}}} for v, e in zip(smooth, sharp, strict=True)]
    assert _smooth_vs_sharp(sizes([-1.4, -1.1, -0.8], [0.05, 0.06, 0.30]), "8") == (True, 2, 1)
    assert _smooth_vs_sharp(sizes([-1.4, -1.1, -1.3], [0.05, 0.06, 0.07]), "8")[0] is False  # falls at a step
    assert _smooth_vs_sharp(sizes([-1.4, -1.39, -0.8], [0.05, 0.06, 0.07]), "8")[0] is None  # one step within


def test_shapes_and_conventions():
    shape = shape_for_width(64)
    assert (shape.n_layer, shape.n_head, shape.name) == (2, 4, "w64l2")
    counts = param_counts(shape, vocab_size=512, context=64)
    assert counts["all"] > counts["non_embedding"] > counts["blocks"] > 0
    assert counts["all"] - counts["non_embedding"] == (512 + 64) * 64
    assert nearest_shape(counts["all"], 512, 64) == shape
    assert set(CONVENTIONS) == set(counts)
    with pytest.raises(UserError, match="width 40"):
        shape_for_width(40)


def test_addition_formats_and_held_out_pairs():
    assert tasks.addition_answer(123, 989, "P") == "1112"
    assert tasks.addition_answer(123, 989, "R") == "2111"
    pad = tasks.addition_answer(123, 989, "S")
    assert pad == "3+9+0=12,2+8+1=11,1+9+1=11>1112"
    for form in tasks.ADDITION_FORMATS:
        assert tasks.final_answer(tasks.addition_answer(123, 989, form), form) == "1112"
    held_out = set(tasks.addition_test_pairs(50))
    for line in tasks.training_lines(600, held_out):
        if line[0] in tasks.ADDITION_FORMATS:
            a, b = line[2:].split("=")[0].split("+")
            assert (int(a), int(b)) not in held_out


def test_kv_examples_and_the_copier_ceiling():
    import random

    ex = tasks.kv_example(random.Random(0), 8)
    assert ex.prompt.startswith("kv ") and ex.prompt.endswith("=") and ex.answer in tasks.VALUES
    shown = dict(pair.split("=") for pair in ex.prompt[3:].split()[:-1])
    assert ex.seen == (ex.prompt.split()[-1][:-1] in shown)
    if ex.seen:
        assert shown[ex.prompt.split()[-1][:-1]] == ex.answer
    assert tasks.perfect_copier(0) == pytest.approx(0.1) and tasks.perfect_copier(8) > 0.9


def test_contextual_calibration_removes_a_prompt_bias_and_reorders_only_the_shots():
    import random

    from lm2llm.scale.calibration import calibrate, reordered, summarise

    likelihood = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    prior = np.array([[0.8, 0.1, 0.1]] * 2)  # the prompt pushes label 0 whatever the input
    p = likelihood * prior / (likelihood * prior).sum(1, keepdims=True)
    assert p.argmax(1).tolist() == [0, 0]
    np.testing.assert_allclose(calibrate(p, prior), likelihood / likelihood.sum(1, keepdims=True))
    np.testing.assert_allclose(calibrate(p, np.full((2, 3), 1 / 3)), p)  # a uniform p_cf changes nothing
    ex = tasks.kv_example(random.Random(1), 8)
    pairs, query = tasks.kv_pairs(ex.prompt)
    assert tasks.kv_prompt(pairs, query) == ex.prompt and len(pairs) == 8
    other = reordered(ex.prompt, random.Random(2))
    assert sorted(tasks.kv_pairs(other)[0]) == sorted(pairs) and tasks.kv_pairs(other)[1] == query
    assert tasks.kv_pairs(reordered(ex.prompt, random.Random(2), "N/A"))[1] == "N/A"
    study = {"raw": np.array([[1, 0, 0, 1], [0, 0, 0, 1.0]]), "calibrated": np.array([[1, 1, 0, 1], [1, 1, 0, 1.0]])}
    summary = summarise(study)
    assert summary["gain"] == pytest.approx(0.375) and summary["raw_spread"] == 0.25
    assert summary["calibrated_spread"] == 0 and summary["spread_change_interval"][1] <= 0


def test_intervals():
    low, high = wilson_interval(50, 100, Z90)
    assert low < 0.5 < high and high - low == pytest.approx(0.164, abs=0.005)
    assert difference_interval(0.5, 100, 0.5, 100)[0] < 0 < difference_interval(0.5, 100, 0.5, 100)[1]


def test_sweep_cli_refuses_bad_input(cli, tmp_path):
    result = cli("scale", "sweep", "--out", str(tmp_path / "s"), "--budgets", "1e9,x")
    assert result.code == 2 and "--budgets" in result.err
    result = cli("scale", "sweep", "--out", str(tmp_path / "s"), "--budgets", "1e9,2e9")
    assert result.code == 2 and "hold out" in result.err
    result = cli("scale", "sweep", "--out", str(tmp_path / "s"), "--tokens-per-param", "500,1")
    assert result.code == 2 and "--tokens-per-param" in result.err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    result = cli("scale", "sweep", "--out", str(tmp_path / "other"))
    assert result.code == 2 and "not empty" in result.err
    result = cli("scale", "emergence", "--out", str(tmp_path / "e"), "--steps", "0")
    assert result.code == 2 and "--steps" in result.err
    result = cli("scale", "emergence", "--out", str(tmp_path / "e"), "--sizes", "40")
    assert result.code == 2 and "width 40" in result.err


@pytest.mark.usefixtures("known_peak")
def test_tiny_sweep_fits_predicts_and_reuses_its_runs(cli, tmp_path):
    import json

    from lm2llm.scale.corpus import prose_shards

    data = prose_shards(tmp_path / "data", docs=60)
    args = ("scale", "sweep", "--data", str(data), "--out", str(tmp_path / "sweep"), "--budgets", "1e8,2e8,4e8",
            "--sizes", "16,32,48", "--context", "32", "--batch-size", "4", "--bootstrap", "3", "--json")
    first = cli(*args)
    assert first.code == 0, first.err
    report = json.loads(first.out)
    runs = report["sweep"]["runs"]
    assert len(runs) == 6 and not any(r["reused"] for r in runs)
    assert {r["budget"] for r in runs} == {1e8, 2e8}  # the largest budget is held out
    for run in runs:  # D = C / 6N, rounded to whole steps of 4 × 32 tokens
        assert run["tokens"] == 128 * max(1, round(run["budget"] / (6 * run["params"]["all"]) / 128))
    assert set(report["fits"]) == {"all", "non_embedding", "blocks"}
    prediction = report["prediction"]
    assert prediction["budget"] == 4e8 and prediction["relative_error"] == pytest.approx(
        prediction["measured_loss"] / prediction["predicted_loss"] - 1)
    assert set(prediction["predicted_by"]) == {"approach 2", "approach 3"}
    again = json.loads(cli(*args).out)
    assert all(r["reused"] for r in again["sweep"]["runs"]) and again["prediction"]["reused"]
    from lm2llm.scale.sweep import SweepSettings, plan_sweep

    settings = SweepSettings(data=str(data), context=32, batch_size=4)
    # these tiny budgets give 0.003 to 0.23 tokens per parameter: a window inside that range keeps some runs
    plans = plan_sweep([1e8, 2e8], [16, 32, 48], settings, tmp_path / "plan", tokens_per_param=(0.01, 0.2))
    assert 0 < len(plans) < 6 and all(0.01 <= p.tokens / p.params["all"] <= 0.2 for p in plans)
    assert len(plans) < len(plan_sweep([1e8, 2e8], [16, 32, 48], settings, tmp_path / "plan"))
    assert [r["val_loss"] for r in again["sweep"]["runs"]] == [r["val_loss"] for r in runs]


@pytest.mark.usefixtures("known_peak")
def test_tiny_emergence_scores_every_probe(tmp_path):
    from lm2llm.scale.emergence import EmergenceSettings, emergence

    settings = EmergenceSettings(widths=(16, 32), steps=3, docs=30, task_docs=5, test_examples=4, batch_size=4)
    record = emergence(settings, tmp_path / "em")
    assert [m["shape"] for m in record["models"]] == ["w16l1", "w32l1"]
    for model in record["models"]:
        assert set(model["kv"]) == {str(k) for k in tasks.SHOTS}
        for scores in model["kv"].values():
            assert 0 <= scores["choice"] <= 1 and scores["logprob"] < 0 and scores["n"] == 4
        assert set(model["addition"]) == set(tasks.ADDITION_FORMATS)
        assert 0 <= model["induction_score"] <= 1
        calibration = model["calibration"]
        assert calibration["orderings"] == settings.orderings and calibration["n"] == 4
        assert calibration["gain_interval"][0] <= calibration["gain"] <= calibration["gain_interval"][1]
    again = emergence(settings, tmp_path / "em")
    assert all(m["reused"] for m in again["models"])
    with pytest.raises(Exception, match="other settings"):
        emergence(EmergenceSettings(widths=(16,), steps=3, docs=31, task_docs=5, test_examples=4), tmp_path / "em")


@pytest.mark.usefixtures("one_torch_thread")
def test_label_scores_in_one_pass_equal_one_pass_per_label():
    """The cached one-pass scoring of every label gives what scoring each label on its own gives."""
    import random

    import torch

    from lm2llm.models import build_model
    from lm2llm.scale.calibration import label_probs
    from lm2llm.scale.probes import answer_logprobs, choice_accuracy, greedy_completions, label_logprobs
    from lm2llm.tokenizer import CharTokenizer

    torch.manual_seed(0)
    tokenizer = CharTokenizer.train([tasks.LETTERS, "0123456789+=>, kv/NA"])
    model = build_model("gpt", None, vocab_size=tokenizer.vocab_size, n_layer=2, d_model=32, n_head=2,
                        context_length=96).eval()
    rng = random.Random(0)
    examples = [tasks.kv_example(rng, shots) for shots in (0, 1, 8, 8, 4, 2, 8)]
    prompts, answers = [e.prompt for e in examples], [e.answer for e in examples]
    labels = [*tasks.VALUES, "a", "zips"]  # of 1, 3 and 4 tokens
    one_by_one = np.stack([answer_logprobs(model, tokenizer, prompts, [label] * len(prompts)) * len(label)
                           for label in labels], axis=1)
    np.testing.assert_allclose(label_logprobs(model, tokenizer, prompts, labels, batch_size=3), one_by_one,
                               atol=1e-4)
    probs = label_probs(model, tokenizer, prompts, labels)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    by_one = []  # greedy with the KV cache equals recomputing the whole sequence at every token
    for prompt in prompts:
        ids = torch.tensor([tokenizer.encode(prompt)])
        for _ in range(5):
            ids = torch.cat([ids, model(ids)[0][:, -1].argmax(-1, keepdim=True)], dim=1)
        by_one.append(tokenizer.decode(ids[0, -5:].tolist()).split("\n")[0])
    assert greedy_completions(model, tokenizer, prompts, max_new=5, batch_size=2) == by_one
    picked = one_by_one[:, :len(tasks.VALUES)].argmax(axis=1)
    assert choice_accuracy(model, tokenizer, prompts, answers, tasks.VALUES).tolist() == [
        float(tasks.VALUES[j] == a) for j, a in zip(picked, answers, strict=True)]
