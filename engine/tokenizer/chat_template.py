"""The plain-text chat template shared by chat SFT data and serving.

A conversation renders as one block per message, the role marker on its own line::

    <|system|>
    You answer in one sentence.
    <|user|>
    What does json.dumps do?
    <|assistant|>
    Serialize ``obj`` to a JSON formatted ``str``.

The role markers are single tokens in every LLModel tokenizer. A generated reply ends at ``</s>`` or at the
next role marker.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.errors import DataError

CHAT_ROLES = ("system", "user", "assistant")
ROLE_MARKERS = {role: f"<|{role}|>" for role in CHAT_ROLES}
MESSAGE_TEMPLATE = "<|{role}|>\n{content}\n"
GENERATION_PROMPT = "<|assistant|>\n"

# Names other chat dumps (ShareGPT, Gemini, ...) use for the same roles.
ROLE_ALIASES = {
    "human": "user",
    "gpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "chatgpt": "assistant",
}


# The same template for Jinja, as Hugging Face tokenizers and OpenAI-compatible servers publish it
# (``/tokenizer_info``): rendering it gives exactly what :func:`render_chat` gives.
JINJA_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def normalize_role(role: object) -> str:
    """Return the canonical role for ``role`` or raise DataError naming the accepted roles."""
    name = str(role).strip().lower()
    name = ROLE_ALIASES.get(name, name)
    if name not in ROLE_MARKERS:
        raise DataError(f"unknown chat role {role!r}; use one of {', '.join(CHAT_ROLES)}")
    return name


def render_chat(messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True) -> str:
    """Render ``[{"role", "content"}, ...]`` with the template; optionally open an assistant turn."""
    parts = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, str):
            raise DataError(
                f"chat message {dict(message)!r} has no text 'content'; give every message a string"
            )
        parts.append(MESSAGE_TEMPLATE.format(role=normalize_role(message.get("role")), content=content))
    if add_generation_prompt:
        parts.append(GENERATION_PROMPT)
    return "".join(parts)
