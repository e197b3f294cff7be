"""Text generation: the sampler, the incremental detokenizer, token scoring and the KV-cached decoding loop.

One core serves every way LLModel generates or scores (``llmodel generate``, training samples, the model
server's batcher, evaluation): :mod:`.sampling` picks tokens, :mod:`.detokenize` turns them into text with stop
strings, :mod:`.scoring` gives log-probabilities, :mod:`.generate` runs the loop.
"""

from engine.generation.generate import GenerationResult, fit_prompt, generate, generate_ids, prompt_ids
from engine.generation.sampling import SamplingParams

__all__ = ["GenerationResult", "SamplingParams", "fit_prompt", "generate", "generate_ids", "prompt_ids"]
