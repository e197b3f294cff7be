"""The Textual workbench: ``llmodel`` with no subcommand opens it (``LLModelApp`` in ``app.py``).

It reaches the engine only through ``engine.client.EngineClient`` and never imports torch.
"""
