"""N-gram language models from counts: MLE, add-k, stupid backoff and interpolated modified Kneser-Ney
equal to KenLM's lmplz, ARPA import/export, KenLM-convention scoring, and the limits of n-grams measured."""

from lm2llm.ngram.arpa import is_arpa_file, read_arpa, write_arpa
from lm2llm.ngram.model import (
    ESTIMATORS,
    Evaluation,
    NgramConfig,
    NgramModel,
    evaluate,
    generate,
    load,
    save,
    sentence_scores,
    train,
)

__all__ = ["ESTIMATORS", "Evaluation", "NgramConfig", "NgramModel", "evaluate", "generate", "is_arpa_file", "load",
           "read_arpa",
           "save", "sentence_scores", "train", "write_arpa"]
