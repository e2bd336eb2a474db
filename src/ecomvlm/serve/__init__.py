"""Inference and serving: the batching engine, JSON-constrained decoding, batch attribute
extraction (``ecomvlm extract``) and the OpenAI-compatible server (``ecomvlm serve``).

Modules import their own dependencies (outlines-core, starlette, uvicorn: the ``[serve]``
extra), so importing this package costs nothing.
"""
