"""The model server's generation core: a slot KV cache and the continuous batcher that drives it."""

from engine.serving.batcher import (
    ContinuousBatcher,
    GenerationOutput,
    QueueFull,
    RequestHandle,
    TextDelta,
    prompt_logprobs,
)
from engine.serving.slot_cache import SlotKVCache

__all__ = [
    "ContinuousBatcher",
    "GenerationOutput",
    "QueueFull",
    "RequestHandle",
    "SlotKVCache",
    "TextDelta",
    "prompt_logprobs",
]
