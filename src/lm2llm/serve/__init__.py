"""Serving a run: an OpenAI-compatible HTTP API (`app`) over a continuous-batching scheduler
(`scheduler`, which knows no HTTP), and a web chat page (`static/index.html`)."""
