"""The web adapters: one suite over Flask, FastAPI, Django and the server, plus each one's own."""
