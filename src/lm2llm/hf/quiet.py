"""transformers' logging and progress bars, silenced for the length of one call.

Export and import report what they did in one table (or one JSON object); transformers' "Loading
weights" bars and its advice would otherwise land on the same terminal and, on a merged stream, break
`--json`. Scoped: whatever verbosity and progress-bar settings the caller had are restored afterwards.
Real errors still raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_transformers() -> Iterator[None]:
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    hub_bars = not are_progress_bars_disabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()  # transformers' and huggingface_hub's
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()
        if hub_bars:
            enable_progress_bars()
