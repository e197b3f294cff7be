"""vLLM's tokenizer endpoints: ``/tokenize``, ``/detokenize``, ``/tokenizer_info``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.server.dependencies import PROTECTED, Served
from engine.server.errors import APIError, error_responses
from engine.server.protocol import DetokenizeRequest, TokenizeRequest
from engine.tokenizer import JINJA_TEMPLATE

router = APIRouter(dependencies=PROTECTED, responses=error_responses(401, 429, 503))


@router.post("/tokenize", responses=error_responses(400, 413, 422))
def tokenize(body: TokenizeRequest, served: Served) -> dict[str, Any]:
    tokenizer = served.tokenizer
    if body.messages is not None:
        messages = [m.model_dump() for m in body.messages]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=body.add_generation_prompt)
    else:
        assert body.prompt is not None  # the request model refuses a body with neither
        text = body.prompt
    tokens = served.prompt_ids(text, add_bos=body.add_special_tokens)
    return {"count": len(tokens), "max_model_len": served.max_len, "tokens": tokens}


@router.post("/detokenize", responses=error_responses(400, 413, 422))
def detokenize(body: DetokenizeRequest, served: Served) -> dict[str, Any]:
    tokenizer = served.tokenizer
    vocab = tokenizer.vocab_size
    bad = next((t for t in body.tokens if not 0 <= t < vocab), None)
    if bad is not None:
        raise APIError(400, f"token id {bad} is outside the vocabulary (0..{vocab - 1})", param="tokens")
    return {"prompt": tokenizer.decode(body.tokens)}


@router.get("/tokenizer_info")
def tokenizer_info(served: Served) -> dict[str, Any]:
    tokenizer = served.tokenizer
    config = served.model.config
    specials = {
        "bos": config.bos_token_id,
        "eos": config.eos_token_id,
        "pad": config.pad_token_id,
        "unk": tokenizer.unk_id,
    }
    return {
        "tokenizer_class": "SentencePieceBPE",
        "vocab_size": tokenizer.vocab_size,
        "model_max_length": served.max_len,
        **{f"{name}_token": tokenizer.id_to_piece(i) for name, i in specials.items()},
        **{f"{name}_token_id": i for name, i in specials.items()},
        "chat_template": JINJA_TEMPLATE,
    }
