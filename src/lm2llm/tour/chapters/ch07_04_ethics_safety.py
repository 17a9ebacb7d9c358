"""Chapter 7.4, ethics and safety: a safety filter measured, and where a model's data came from.

The filter (`lm2llm.safety`, what `--safety-filter` puts around generate, chat and serve): a small
English/Korean lexicon, and (full mode, when the Korean hate-speech comments are present) our BERT
fine-tuned on 70 % of them. Each is scored on lines it never saw with Wilson intervals: recall (the share
of unsafe lines caught), false-positive rate and precision against its chance level (the unsafe share).
Data lineage: the records every run now carries (`lineage.json`, `DATA.md`), shown for the corpora the
guide's other chapters train on and for the filter's own run.
"""

from __future__ import annotations

from pathlib import Path

from lm2llm.data.lineage import describe_input
from lm2llm.safety.classifier import LexiconClassifier
from lm2llm.safety.data import hate_speech, shipped_rules, shipped_set, split_hate_speech, tour_data_dir
from lm2llm.safety.evaluate import evaluate_filter
from lm2llm.safety.guard import Guard
from lm2llm.safety.train import safety_run
from lm2llm.tour.framework import (
    Chapter,
    ChapterContext,
    ChapterResult,
    Claim,
    Sample,
    T,
    Table,
    demonstration,
)

SAFETY_RUN = "safety-bert"  # inside chapter 7.2's folder: 7.2 and 7.4 share one run


def _cell(rate: dict) -> str:
    low, high = rate["interval"]
    return f"{rate['value']:.2f} ({rate['hits']}/{rate['n']}; {low:.2f}–{high:.2f})"


def score_rows(name: str, where: str, score: dict) -> list:
    return [name, where, score["examples"], _cell(score["recall"]), _cell(score["false_positive_rate"]),
            _cell(score["precision"]), f"{score['unsafe_share']:.2f}"]


def bert_report(ctx: ChapterContext, data_dir: Path | None) -> dict | None:
    """The fine-tuned classifier's held-out report (full mode with the data), trained once per tour."""
    if ctx.quick or data_dir is None:
        return None
    return safety_run(ctx.chapter_dir("7.2") / SAFETY_RUN, data_dir)


def run(ctx: ChapterContext) -> ChapterResult:
    rules = LexiconClassifier()
    ours = shipped_set()
    score, _ = evaluate_filter(rules, ours)
    scores = {("rules", "lm2llm-bilingual"): score.to_dict()}
    claims = [Claim(
        T("A lexicon filter flags unsafe lines far more often than safe ones, in English and Korean, look-alikes "
          "included.",
          "어휘 목록 필터는 영어와 한국어 모두에서, 비슷하게 생긴 단어까지 넣어도, 안전하지 않은 문장을 안전한 문장보다 "
          "훨씬 자주 걸러 낸다."),
        T(f"on our {score.examples} lines it catches {score.recall.value:.0%} of unsafe lines (95 % CI "
          f"{score.recall.interval[0]:.2f}–{score.recall.interval[1]:.2f}) at {score.false_positive_rate.value:.0%} "
          f"false positives (CI to {score.false_positive_rate.interval[1]:.2f}); holds when the intervals part. The "
          "same author wrote the lexicon and the lines: a check of the rules, not a real-world estimate",
          f"우리가 쓴 {score.examples}문장에서 안전하지 않은 문장의 {score.recall.value:.0%}를 잡고 (95 % 구간 "
          f"{score.recall.interval[0]:.2f}–{score.recall.interval[1]:.2f}) 오탐은 {score.false_positive_rate.value:.0%} "
          f"(구간 상한 {score.false_positive_rate.interval[1]:.2f}); 두 구간이 갈라지면 성립. 어휘 목록과 문장을 같은 "
          "사람이 썼으므로 규칙의 점검일 뿐 실제 성능의 추정은 아님"),
        score.recall.interval[0] > score.false_positive_rate.interval[1], chance=score.unsafe_share,
        interval=score.recall.interval)]
    ctx.progress(1, 4)

    data_dir = tour_data_dir()
    if data_dir is not None:
        _, held_out = split_hate_speech(hate_speech(data_dir))
        real, _ = evaluate_filter(rules, held_out)
        scores[("rules", "korean-hate-speech")] = real.to_dict()
        claims.append(Claim(
            T("On real Korean comments a lexicon misses most hateful lines: hate is mostly phrased without a "
              "listed word.",
              "실제 한국어 댓글에서 어휘 목록은 혐오 댓글 대부분을 놓친다: 혐오는 대개 목록에 있는 단어 없이 표현된다."),
            T(f"recall {real.recall.value:.2f} (95 % CI {real.recall.interval[0]:.2f}–{real.recall.interval[1]:.2f}) on "
              f"{real.recall.n} hateful/offensive held-out comments, precision {real.precision.value:.2f} (chance "
              f"{real.unsafe_share:.2f}); a random filter with its false-positive rate would recall "
              f"{real.false_positive_rate.value:.2f}; holds when the recall interval lies below 0.5",
              f"혐오/공격 댓글 {real.recall.n}개(평가용)에서 재현율 {real.recall.value:.2f} (95 % 구간 "
              f"{real.recall.interval[0]:.2f}–{real.recall.interval[1]:.2f}), 정밀도 {real.precision.value:.2f} (우연 "
              f"{real.unsafe_share:.2f}); 같은 오탐률의 무작위 필터라면 재현율 "
              f"{real.false_positive_rate.value:.2f}; 재현율 구간이 0.5 아래면 성립"),
            real.recall.interval[1] < 0.5, chance=real.false_positive_rate.value, interval=real.recall.interval))
    ctx.progress(2, 4)

    report = bert_report(ctx, data_dir)
    if report is not None:
        bert = next(v for k, v in report["filters"].items() if k != "rules")
        scores[("BERT (ours, fine-tuned)", "korean-hate-speech")] = bert
        precision, recall_rules = bert["precision"], scores[("rules", "korean-hate-speech")]["recall"]
        claims.append(Claim(
            T("Our BERT fine-tuned on a few hundred Korean comments catches more hateful lines than the lexicon, "
              "at the price of false positives, and its flags are better than chance.",
              "한국어 댓글 수백 개로 미세 조정한 우리 BERT는 어휘 목록보다 혐오 댓글을 더 많이 잡지만 오탐이 따르고, "
              "그 판정은 우연보다 낫다."),
            T(f"on {bert['examples']} held-out comments: catches {bert['recall']['value']:.0%} of hateful lines at "
              f"{bert['false_positive_rate']['value']:.0%} false positives; recall CI {bert['recall']['interval'][0]:.2f}–"
              f"{bert['recall']['interval'][1]:.2f} vs the lexicon's {recall_rules['interval'][0]:.2f}–"
              f"{recall_rules['interval'][1]:.2f}; precision {precision['value']:.2f} (CI from "
              f"{precision['interval'][0]:.2f}) vs chance {bert['unsafe_share']:.2f}; holds when both intervals part",
              f"평가용 {bert['examples']}개 댓글에서 혐오 댓글의 {bert['recall']['value']:.0%}를 오탐 "
              f"{bert['false_positive_rate']['value']:.0%}로 잡음; 재현율 구간 {bert['recall']['interval'][0]:.2f}–"
              f"{bert['recall']['interval'][1]:.2f}, 어휘 목록은 {recall_rules['interval'][0]:.2f}–"
              f"{recall_rules['interval'][1]:.2f}; 정밀도 {precision['value']:.2f} (구간 하한 "
              f"{precision['interval'][0]:.2f}), 우연 {bert['unsafe_share']:.2f}; 두 구간이 모두 갈라지면 성립"),
            bert["recall"]["interval"][0] > recall_rules["interval"][1]
            and precision["interval"][0] > bert["unsafe_share"], chance=bert["unsafe_share"],
            interval=tuple(bert["recall"]["interval"])))
    ctx.progress(3, 4)

    guard = Guard(rules)
    examples = ["What a stupid question, idiot.", "서울역이 경부선의 시발점이다.", "꺼져라 이 쓰레기야",
                "Kill the process and restart it."]
    shown = Sample(T("What --safety-filter rules does to some inputs", "--safety-filter rules가 입력을 다루는 모습"),
                   "\n".join(f"{text}\n  → {refusal or 'passed to the model'}"
                             for text, refusal in zip(examples, guard.refusals(examples), strict=True)))
    rules_text = Sample(T("How the lexicon and our lines were built", "어휘 목록과 평가 문장을 만든 규칙"),
                        "\n".join(f"- {r}" for r in rules.rules + shipped_rules()))

    corpora = ["python-docs", "korean-law"] + ([str(data_dir / "korean-hate-speech")] if data_dir else [])
    lineage = [describe_input(c) for c in corpora]
    lineage_table = Table(T("Data lineage: what every run now records about the corpora it was trained on",
                            "데이터 계보: 모든 실행이 학습한 말뭉치에 대해 기록하는 내용"),
                          ["source", "kind", "licence", "provenance", "files (sha256)", "PII"],
                          [[e["source"], e["kind"], e["licence"][:80], e["provenance"][:80],
                            "; ".join(f"{Path(f.get('path') or f.get('url', '')).name} {str(f.get('sha256'))[:12]}"
                                      for f in e["files"][:3]) or "—",
                            str(e["pii"].get("replaced", e["pii"].get("found")))] for e in lineage])
    claims.append(demonstration(
        T("Every training run records which data it was trained on: source, files with sha256, licence, "
          "provenance and PII figures (lineage.json and DATA.md), its base run's records included.",
          "모든 학습 실행은 어떤 데이터로 학습했는지 기록한다: 출처, 파일과 sha256, 라이선스, 이력, 개인정보 수치 "
          "(lineage.json과 DATA.md), 기반 실행의 기록까지."),
        T(f"{len(lineage)} corpora described above; train, classify, sft, reward, dpo and ppo write the records "
          "(true by construction: our code writes them)",
          f"위 표에 말뭉치 {len(lineage)}개; train, classify, sft, reward, dpo, ppo가 기록을 씀 (우리 코드가 쓰므로 "
          "구성상 참)"),
        all(e["licence"] for e in lineage)))
    ctx.progress(4, 4)

    table = Table(T("Safety filters on lines they never saw: rate (hits/n; 95 % Wilson interval)",
                    "처음 보는 문장에서의 안전 필터: 비율 (맞음/전체; 95 % Wilson 구간)"),
                  ["filter", "data", "lines", "recall (unsafe caught)", "false-positive rate", "precision",
                   "chance precision"],
                  [score_rows(name, where, s) for (name, where), s in scores.items()])
    best = scores.get(("BERT (ours, fine-tuned)", "korean-hate-speech")) or scores.get(("rules", "korean-hate-speech"))
    headline = best or score.to_dict()
    summary = T(f"The filter catches {headline['recall']['value']:.0%} of unsafe lines at "
                f"{headline['false_positive_rate']['value']:.0%} false positives ({headline['examples']} unseen lines); "
                f"{'the hate-speech comments were absent: only our own lines were scored' if data_dir is None else ''}",
                f"필터는 안전하지 않은 문장의 {headline['recall']['value']:.0%}를 오탐 "
                f"{headline['false_positive_rate']['value']:.0%}로 잡는다 (처음 보는 {headline['examples']}문장); "
                f"{'혐오 댓글 데이터가 없어 우리 문장만 평가함' if data_dir is None else ''}")
    return ChapterResult(summary, claims=claims, tables=[table, lineage_table], samples=[shown, rules_text],
                         metrics={"filters": {f"{n}/{w}": s for (n, w), s in scores.items()},
                                  "lineage": lineage})


CHAPTER = Chapter("7.4", T("Ethics and safety", "윤리와 안전"), run)
