"""The three request kinds for an n-gram model, through its log-probabilities (where they apply).

An n-gram model sees words (or BPE ids), one sentence per line, with `<s>` and `</s>` around each line.
So a request is scored on words: the context and context + continuation are tokenised, the words that the
continuation adds are the ones scored (the split lm-eval makes on tokens), each given its n−1 previous
words. A rolling text is scored line by line, `</s>` included: the end of a line is an event the model
predicts, the way a neural model predicts "\\n". Greedy generation picks the most likely next word.
Stupid backoff has scores, not probabilities, and is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lm2llm.errors import UserError
from lm2llm.evaluate.requests import Generation, cut_at_stops, split_trailing_space
from lm2llm.ngram import NgramModel
from lm2llm.ngram import generate as ngram_generate
from lm2llm.ngram.estimators.counting import StupidBackoffModel
from lm2llm.ngram.vocab import BOS_ID, UNK_ID, tokenize

LN10 = float(np.log(10.0))


class NgramScorer:
    def __init__(self, model: NgramModel, *, name: str = "ngram"):
        if isinstance(model.lm, StupidBackoffModel):
            raise UserError("stupid backoff gives scores, not probabilities: it cannot be evaluated",
                            where="estimator", hint="train with kneser-ney, mle or add-k")
        self.model, self.name = model, name

    def _ids(self, text: str) -> list[int]:
        index = self.model.vocab.index
        return [index.get(word, UNK_ID) for word in tokenize([text], self.model.config.tokenize)[0]]

    def _word_logprobs(self, history: list[int], words: list[int]) -> tuple[float, bool]:
        total, greedy = 0.0, True
        context = [BOS_ID, *history]
        for word in words:
            scores = self.model.lm.next_log10_probs(context)
            total += float(scores[word]) * LN10
            greedy = greedy and int(np.argmax(scores)) == word
            context.append(word)
        return total, greedy

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        out = []
        for context, continuation in requests:
            context, continuation = split_trailing_space(context, continuation)
            history = self._ids(context)
            whole = self._ids(context + continuation)
            out.append(self._word_logprobs(history, whole[len(history):]))
        return out

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[float]:
        out = []
        for text in texts:
            tokens, starts = self.model.encode(text.split("\n"))
            out.append(float(self.model.lm.token_log10_probs(tokens, starts).sum()) * LN10)
        return out

    def generate_until(self, requests: Sequence[Generation]) -> list[str]:
        out = []
        for request in requests:
            text = ngram_generate(self.model, request.context.split("\n")[-1], max_words=request.max_tokens,
                                  temperature=0)
            out.append(cut_at_stops(" " + text if text else "", request.until))
        return out

