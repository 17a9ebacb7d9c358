"""Serving a run: an OpenAI-compatible HTTP API (`app`) over the decode engine on a thread (`scheduler`,
which knows no HTTP), and a web chat page (`static/index.html`)."""
