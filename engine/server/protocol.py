"""Request bodies of the model server: the seed's endpoints and the OpenAI/vLLM-compatible ones.

Unknown fields are ignored everywhere (OpenAI clients send extras such as ``user``); known fields are validated
strictly, as the OpenAPI schema states them, and a violation is answered with 422 in OpenAI's error shape: no
coercion (``"stream": 0``, ``"n": true``, ``"n": 1.5`` or ``"max_tokens": "5"`` are refused), except what JSON
Schema itself admits: an integer field takes a number with no fraction (``"n": 1.0``), a number field an integer. Numbers have bounds (a seed is one JSON carries exactly, no NaN or infinity
anywhere), prompts are non-empty, texts must be valid Unicode (no lone surrogates), and lists are bounded, so
nothing a client sends reaches the model unchecked.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

MAX_STOPS = 16  # OpenAI allows 4; a few more cost nothing
MAX_EMBED_INPUTS = 64
MAX_PROMPTS = 256
MAX_MESSAGES = 512
# A seed is an integer JSON carries exactly (a double's 53 bits: what JavaScript, and JSON Schema validators that
# compare as doubles, read without rounding); the batcher folds it into its generator's range.
MAX_SEED = 2**53


def _valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return text


def _integral(value: Any) -> Any:
    """JSON Schema's integers: each number with no fraction (``1.0``) in ``value`` made an int, as ``1`` is."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_integral(item) for item in value]
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    return value


Text = Annotated[str, AfterValidator(_valid_unicode)]
Prompt = Annotated[str, Field(min_length=1), AfterValidator(_valid_unicode)]
TokenId = Annotated[int, Field(ge=0)]


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null; leave the field out instead")
    return value


def one_of_required(*fields: str) -> dict[str, Any]:
    """JSON Schema: at least one of ``fields`` is given."""
    return {"anyOf": [{"required": [field]} for field in fields]}


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_numbers(cls, data: Any) -> Any:
        return _integral(data)


class SamplingFields(_Body):
    max_tokens: int | None = Field(None, ge=0)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float = Field(1.0, gt=0.0, le=1e6)
    stop: Text | Annotated[list[Text], Field(max_length=MAX_STOPS)] | None = None
    seed: int | None = Field(None, ge=-MAX_SEED, le=MAX_SEED)
    stream: bool = False
    ignore_eos: bool = False  # vLLM's extension: generate exactly max_tokens (benchmarks)


class GenerateRequest(SamplingFields):
    """The seed's ``POST /generate``."""

    model: str | None = None  # the base (default) or a served adapter's name
    prompt: Prompt
    max_tokens: int | None = Field(100, ge=0)


Texts = Text | Annotated[list[Text], Field(max_length=MAX_EMBED_INPUTS)]


class EmbedRequest(_Body):
    """The seed's ``POST /embed``: one text or a list of texts, as ``text`` or (OpenAI's name) ``input``."""

    model_config = ConfigDict(json_schema_extra=one_of_required("text", "input"))

    text: Texts | SkipJsonSchema[None] = None  # left out is None; null is refused, as the schema says
    input: Texts | SkipJsonSchema[None] = None

    _given_not_null = field_validator("text", "input", mode="before")(_not_null)

    @model_validator(mode="after")
    def _one_given(self) -> EmbedRequest:
        if self.text is None and self.input is None:
            raise ValueError("give 'text' (a string or a list of strings)")
        return self


class AttentionRequest(_Body):
    """``POST /attention``: the text whose attention maps to compute."""

    text: Prompt


class StreamOptions(_Body):
    include_usage: bool = False


TokenIds = Annotated[list[TokenId], Field(max_length=1 << 20)]
PromptIds = Annotated[list[TokenId], Field(min_length=1, max_length=1 << 20)]


class CompletionRequest(SamplingFields):
    """OpenAI ``POST /v1/completions``."""

    model: str | None = None
    prompt: (
        Prompt
        | Annotated[list[Prompt], Field(min_length=1, max_length=MAX_PROMPTS)]
        | PromptIds
        | Annotated[list[PromptIds], Field(min_length=1, max_length=MAX_PROMPTS)]
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
    """vLLM ``POST /tokenize``: a prompt or chat messages (the messages when both are given)."""

    model_config = ConfigDict(json_schema_extra=one_of_required("prompt", "messages"))

    model: str | None = None
    prompt: Text | SkipJsonSchema[None] = None  # left out is None; null is refused, as the schema says
    messages: Annotated[list[ChatMessage], Field(max_length=MAX_MESSAGES)] | SkipJsonSchema[None] = None
    add_special_tokens: bool = True
    add_generation_prompt: bool = True

    _given_not_null = field_validator("prompt", "messages", mode="before")(_not_null)

    @model_validator(mode="after")
    def _one_given(self) -> TokenizeRequest:
        if self.prompt is None and self.messages is None:
            raise ValueError("give 'prompt' or 'messages'")
        return self


class DetokenizeRequest(_Body):
    model: str | None = None
    tokens: TokenIds
