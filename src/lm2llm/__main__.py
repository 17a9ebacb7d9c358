"""`python -m lm2llm` (and `torchrun -m lm2llm`) run the CLI."""

from lm2llm.cli import main

if __name__ == "__main__":
    main()
