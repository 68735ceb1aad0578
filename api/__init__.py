"""The HTTP API (FastAPI) for dispatchers and their tools."""
