"""The decode engine on a thread of its own, for the server: requests come from the event loop's threads,
results leave through each request's `emit` callback.

All the decoding (continuous batching, per-sequence samplers, stop strings, cancellation) is the
engine's (`inference.engine`); this module only keeps its loop running while there is work and sleeps
while there is none. Nothing here knows HTTP.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from torch import nn

from lm2llm.inference.engine import Engine, EngineStats, SequenceRequest, Ticket
from lm2llm.tokenizer import Tokenizer


class BatchScheduler:
    """Runs an `Engine` on a thread; `submit` from any thread."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, *, max_batch: int = 16, max_waiting: int = 256,
                 prefill_model: nn.Module | None = None):
        self.engine = Engine(model, tokenizer, max_batch=max_batch, max_waiting=max_waiting,
                             prefill_model=prefill_model)
        self._wakeup = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None

    @property
    def limit(self) -> int | None:
        return self.engine.limit

    @property
    def vocab_size(self) -> int:
        return self.engine.vocab_size

    @property
    def stats(self) -> EngineStats:
        return self.engine.stats

    @property
    def load(self) -> dict[str, int]:
        return self.engine.load

    def check_prompt(self, prompt_ids: Sequence[int]) -> None:
        self.engine.check_prompt(prompt_ids)

    def submit(self, requests: Sequence[SequenceRequest]) -> Ticket:
        """Queue sequences (all or none); raises UserError for a bad prompt, QueueFull when too many wait."""
        ticket = self.engine.submit(requests)
        with self._wakeup:
            self._wakeup.notify()
        return ticket

    def start(self) -> None:
        if self._thread is not None:
            return
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="lm2llm-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wakeup:
            self._running = False
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while self._running and not self.engine.busy:
                    self._wakeup.wait()
                if not self._running:
                    return
            try:
                self.engine.step()
            except Exception:  # noqa: S110 - the engine has ended every sequence with the error; keep serving
                pass
