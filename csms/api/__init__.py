"""The HTTP API adapter (FastAPI)."""
