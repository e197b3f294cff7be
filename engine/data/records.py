"""Turn one JSON record into training text or a chat conversation."""

from __future__ import annotations

from typing import Any

from engine.errors import DataError
from engine.tokenizer.chat_template import normalize_role, render_chat

Message = dict[str, str]


class RecordError(ValueError):
    """A record has no usable field; the message says which fields were expected."""


def record_text(record: Any) -> str:
    """``text``, else ``content``, else ``prompt``+``response`` or a conversation rendered with the chat template."""
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    for key in ("text", "content"):
        if key in record:
            return _string(record, key)
    messages = record_messages(record)
    if messages is None:
        raise RecordError(
            "record has no 'text', 'content', 'prompt'+'response', 'prompt'+'completion', "
            "'instruction'+'output', 'conversation', 'messages' or 'conversations' field"
        )
    return render_chat(messages, add_generation_prompt=False)


def record_messages(record: Any) -> list[Message] | None:
    """The record's conversation: LMSYS ``conversation``, OpenAI ``messages``, ShareGPT ``conversations``,
    ``prompt`` + ``response``/``completion``, or Alpaca ``instruction`` (+ ``input``) + ``output``; None if none."""
    if not isinstance(record, dict):
        raise RecordError(f"expected a JSON object, got {type(record).__name__}")
    for key in ("conversation", "messages", "conversations"):
        if key in record:
            return parse_messages(record[key], key)
    for reply in ("response", "completion"):
        if "prompt" in record and reply in record:
            return [
                {"role": "user", "content": _string(record, "prompt")},
                {"role": "assistant", "content": _string(record, reply)},
            ]
    if "instruction" in record and "output" in record:  # Alpaca
        request = _string(record, "instruction")
        extra = _string(record, "input") if record.get("input") else ""
        return [
            {"role": "user", "content": f"{request}\n\n{extra}" if extra else request},
            {"role": "assistant", "content": _string(record, "output")},
        ]
    return None


def parse_messages(value: Any, key: str = "conversation") -> list[Message]:
    """Validate a list of ``{role, content}`` (or ShareGPT ``{from, value}``) dicts and normalise the roles."""
    if not isinstance(value, list) or not value:
        raise RecordError(f"'{key}' must be a non-empty list of {{role, content}} messages")
    messages = []
    for n, item in enumerate(value):
        if not isinstance(item, dict):
            raise RecordError(f"'{key}'[{n}] is not an object")
        role = item.get("role", item.get("from"))
        content = item.get("content", item.get("value"))
        if not isinstance(content, str):
            raise RecordError(f"'{key}'[{n}] has no string 'content'")
        try:
            messages.append({"role": normalize_role(role), "content": content})
        except DataError as err:
            raise RecordError(f"'{key}'[{n}]: {err}") from None
    return messages


def has_conversation(record: Any) -> bool:
    """Whether the record is in the chat format (has a ``conversation`` or ``messages`` list)."""
    return isinstance(record, dict) and any(
        k in record for k in ("conversation", "messages", "conversations")
    )


def _string(record: dict[str, Any], key: str) -> str:
    value = record[key]
    if not isinstance(value, str):
        raise RecordError(f"'{key}' is {type(value).__name__}, not a string")
    return value
