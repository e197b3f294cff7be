"""Request bodies of the model server: the seed's endpoints and the OpenAI/vLLM-compatible ones.

Unknown fields are ignored everywhere (OpenAI clients send extras such as ``user``); known fields are validated,
and a violation is answered with 422 in OpenAI's error shape. Numbers have bounds (a seed must fit a 64-bit
generator, no NaN or infinity anywhere), texts must be valid Unicode (no lone surrogates), and lists are bounded,
so nothing a client sends reaches the model unchecked.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from engine.generation.sampling import SEED_RANGE

MAX_STOPS = 16  # OpenAI allows 4; a few more cost nothing
MAX_EMBED_INPUTS = 64
MAX_PROMPTS = 256
MAX_MESSAGES = 512


def _valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return text


Text = Annotated[str, AfterValidator(_valid_unicode)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


class SamplingFields(_Body):
    max_tokens: int | None = Field(None, ge=0)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=1e6)
    stop: Text | Annotated[list[Text], Field(max_length=MAX_STOPS)] | None = None
    seed: int | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stream: bool = False
    ignore_eos: bool = False  # vLLM's extension: generate exactly max_tokens (benchmarks)


class GenerateRequest(SamplingFields):
    """The seed's ``POST /generate``."""

    model: str | None = None  # the base (default) or a served adapter's name
    prompt: Text
    max_tokens: int | None = Field(100, ge=0)


class EmbedRequest(_Body):
    """The seed's ``POST /embed``: one text or a list of texts."""

    text: Text | Annotated[list[Text], Field(max_length=MAX_EMBED_INPUTS)] | None = None
    input: Text | Annotated[list[Text], Field(max_length=MAX_EMBED_INPUTS)] | None = None


class AttentionRequest(_Body):
    """``POST /attention``: the text whose attention maps to compute."""

    text: Text


class StreamOptions(_Body):
    include_usage: bool = False


TokenIds = Annotated[list[int], Field(max_length=1 << 20)]


class CompletionRequest(SamplingFields):
    """OpenAI ``POST /v1/completions``."""

    model: str | None = None
    prompt: (
        Text
        | Annotated[list[Text], Field(max_length=MAX_PROMPTS)]
        | TokenIds
        | Annotated[list[TokenIds], Field(max_length=MAX_PROMPTS)]
    )
    n: int = Field(1, ge=1, le=16)
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=5)
    stream_options: StreamOptions | None = None


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant"]
    content: Text


class ChatCompletionRequest(SamplingFields):
    """OpenAI ``POST /v1/chat/completions``."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    n: int = Field(1, ge=1, le=16)
    max_completion_tokens: int | None = Field(None, ge=0)
    stream_options: StreamOptions | None = None


class TokenizeRequest(_Body):
    """vLLM ``POST /tokenize``: a prompt or chat messages."""

    model: str | None = None
    prompt: Text | None = None
    messages: Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)] | None = None
    add_special_tokens: bool = True
    add_generation_prompt: bool = True


class DetokenizeRequest(_Body):
    model: str | None = None
    tokens: TokenIds
