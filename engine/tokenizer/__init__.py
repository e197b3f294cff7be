"""SentencePiece BPE tokenizer with fixed special ids and the chat template."""

from engine.tokenizer.chat_template import (
    CHAT_ROLES,
    GENERATION_PROMPT,
    JINJA_TEMPLATE,
    ROLE_MARKERS,
    render_chat,
)
from engine.tokenizer.sentencepiece_tokenizer import (
    BOS_ID,
    DEFAULT_VOCAB_SIZE,
    EOS_ID,
    MASK_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UNK_ID,
    Tokenizer,
)

__all__ = [
    "BOS_ID",
    "CHAT_ROLES",
    "DEFAULT_VOCAB_SIZE",
    "EOS_ID",
    "GENERATION_PROMPT",
    "JINJA_TEMPLATE",
    "MASK_ID",
    "PAD_ID",
    "ROLE_MARKERS",
    "SPECIAL_TOKENS",
    "UNK_ID",
    "Tokenizer",
    "render_chat",
]
