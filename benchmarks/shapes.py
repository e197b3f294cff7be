"""The model shapes and batch sizes the throughput benchmarks measure."""

from __future__ import annotations

from engine.model import ModelConfig

BATCH_SIZE = 8
SEQ_LEN = 256


def benchmark_shapes() -> dict[str, ModelConfig]:
    """Two small Llama-shaped models (SwiGLU, RMSNorm, RoPE; tied embeddings by default) whose figures
    benchmarks/RESULTS.md follows over time: ``4x256`` (the ``tiny`` preset until 2026-12; its rows before then say
    "tiny") and ``reference``."""
    return {
        "4x256": ModelConfig(
            vocab_size=32000, d_model=256, n_layers=4, n_heads=4, d_ff=1024, max_len=512, name="4x256"
        ),
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
