"""End-to-end pipelines composed from the engine's modules."""
