"""The model server: a loaded checkpoint behind the seed's, OpenAI's and vLLM's HTTP APIs.

``python -m engine.server`` runs one (``llmodel serve``, ``llmodel api``, the workspace daemon's serving switch).
:mod:`.served_model` loads the checkpoint and owns its :mod:`.batcher` (continuous batching over a
:mod:`.slot_cache`); :mod:`.app` builds the FastAPI app from the routers in :mod:`.routes`.
"""
