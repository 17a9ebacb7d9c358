"""`process_results` for the stdlib-qa task, read by lm2llm's harness and by lm_eval (`!function utils....`)."""

from lm2llm.evaluate.stdlib_qa import score_answer


def process_results(doc, results):
    return score_answer(results[0], [doc["answer"], *doc["aliases"]])
