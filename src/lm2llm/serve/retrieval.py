"""`serve --rag INDEX`: chat requests answered from retrieved passages, the response carrying citations.

The last user message is the question: the index's k best passages are numbered into it with the RAG
instructions as the system prompt (`lm2llm.rag.answer.rag_messages`; earlier turns are kept). The
response gains `passages` (number, origin, score of each retrieved passage) and, when not streamed,
`citations` (the passages the answer cites, with their text) and `groundedness` (the check of
`lm2llm.rag.grounding`), fields an OpenAI client ignores and a RAG client reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from lm2llm.errors import UserError
from lm2llm.rag.answer import rag_messages
from lm2llm.rag.grounding import check_answer, split_answer
from lm2llm.rag.index import Hit, RagIndex


@dataclass
class Retrieval:
    index: RagIndex
    k: int = 5
    mode: str = "hybrid"

    def augment(self, messages: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[Hit]]:
        if not messages or messages[-1]["role"] != "user":
            raise UserError("with retrieval, the last message must be the user's question", where="messages")
        question = messages[-1]["content"]
        hits = self.index.search(question, self.k, self.mode)
        system, user = rag_messages(question, [h.chunk.text for h in hits])
        history = [m for m in messages[:-1] if m["role"] != "system"]
        return [system, *history, user], hits

    @staticmethod
    def passages(hits: list[Hit]) -> list[dict]:
        return [{"number": i, "origin": h.chunk.origin, "score": h.score} for i, h in enumerate(hits, start=1)]

    @staticmethod
    def citations(answer: str, hits: list[Hit]) -> dict:
        cited = sorted({n for s in split_answer(answer) for n in s.citations if 1 <= n <= len(hits)})
        g = check_answer(answer, [h.chunk.text for h in hits])
        return {"citations": [{"number": n, "origin": hits[n - 1].chunk.origin, "text": hits[n - 1].chunk.text}
                              for n in cited],
                "groundedness": {"faithfulness": g.faithfulness, "citation_recall": g.citation_recall,
                                 "citation_precision": g.citation_precision, "unsupported_sentences": g.unsupported}}
