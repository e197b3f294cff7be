"""Text generation: sampling rules and the KV-cached decoding loop."""

from engine.generation.generate import GenerationResult, fit_prompt, generate, generate_ids
from engine.generation.sampling import SamplingParams

__all__ = ["GenerationResult", "SamplingParams", "fit_prompt", "generate", "generate_ids"]
