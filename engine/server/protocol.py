"""Request bodies of the model server: the seed's endpoints and the OpenAI/vLLM-compatible ones.

Unknown fields are ignored everywhere (OpenAI clients send extras such as ``user``); known fields are validated,
and a violation is answered with 422 in OpenAI's error shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SamplingFields(_Body):
    max_tokens: int | None = Field(None, ge=0)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    ignore_eos: bool = False  # vLLM's extension: generate exactly max_tokens (benchmarks)


class GenerateRequest(SamplingFields):
    """The seed's ``POST /generate``."""

    prompt: str
    max_tokens: int | None = Field(100, ge=0)


class EmbedRequest(_Body):
    """The seed's ``POST /embed``: one text or a list of texts."""

    text: str | list[str] | None = None
    input: str | list[str] | None = None


class AttentionRequest(_Body):
    """``POST /attention``: the text whose attention maps to compute."""

    text: str


class StreamOptions(_Body):
    include_usage: bool = False


class CompletionRequest(SamplingFields):
    """OpenAI ``POST /v1/completions``."""

    model: str | None = None
    prompt: str | list[str] | list[int] | list[list[int]]
    n: int = Field(1, ge=1, le=16)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)
    stream_options: StreamOptions | None = None


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(SamplingFields):
    """OpenAI ``POST /v1/chat/completions``."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    n: int = Field(1, ge=1, le=16)
    max_completion_tokens: int | None = Field(None, ge=0)
    stream_options: StreamOptions | None = None


class TokenizeRequest(_Body):
    """vLLM ``POST /tokenize``: a prompt or chat messages."""

    model: str | None = None
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    add_special_tokens: bool = True
    add_generation_prompt: bool = True


class DetokenizeRequest(_Body):
    model: str | None = None
    tokens: list[int]
