"""Safety: a lexicon and a fine-tuned BERT that flag unsafe text, measured with intervals, and the guard that
`--safety-filter` puts around generate, chat and serve."""
