"""The per-session backend: one loaded model bundle behind an HTTP API and an in-process task
queue (docs/backend.md)."""
