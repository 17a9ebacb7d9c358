"""Hugging Face interop: export our runs as transformers checkpoints, import theirs as our models.

`export_run(RUN, OUT)` and `import_dir(DIR, OUT)`; `convert.py` holds the name and config mappings.
"""

from lm2llm.hf.export import export_run, to_transformers
from lm2llm.hf.import_ import import_dir, load_hf_dir

__all__ = ["export_run", "import_dir", "load_hf_dir", "to_transformers"]
