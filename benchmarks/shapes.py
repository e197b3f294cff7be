"""The model shapes and batch sizes the throughput benchmarks measure."""

from __future__ import annotations

from engine.model import ModelConfig

BATCH_SIZE = 8
SEQ_LEN = 256


def benchmark_shapes() -> dict[str, ModelConfig]:
    """The ``tiny`` preset and a small Llama-shaped reference (SwiGLU, RMSNorm, RoPE; tied embeddings by default)."""
    return {
        "tiny": ModelConfig.from_preset("tiny"),
        "reference": ModelConfig(
            vocab_size=8192,
            d_model=384,
            n_layers=6,
            n_heads=6,
            d_ff=1024,
            max_len=512,
            ffn_type="swiglu",
            norm_type="rmsnorm",
            pos_type="rope",
            name="reference",
        ),
    }
