"""The seed's API: ``/health`` (public), ``/model-info``, ``/generate``, ``/embed``, plus ``/attention`` and the
Prometheus ``/metrics``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.sse import EventSourceResponse, format_sse_event

from engine.errors import LLModelError
from engine.server import completion
from engine.server.dependencies import PROTECTED, Metrics, Served
from engine.server.errors import APIError, error_responses, streamed_or_json
from engine.server.protocol import AttentionRequest, EmbedRequest, GenerateRequest
from engine.server.served_model import ServedModel

public = APIRouter()
router = APIRouter(dependencies=PROTECTED, responses=error_responses(401, 429, 503))

HEALTH_PROBLEM: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The model is still loading (status loading), or failed to load (status error)",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "status": {"type": "string", "enum": ["loading", "error"]},
                        "error": {"type": ["string", "null"]},
                    },
                    "required": ["status", "error"],
                }
            }
        },
    }
}


@public.get("/health", responses=HEALTH_PROBLEM)
def health(request: Request) -> JSONResponse:
    served: ServedModel = request.app.state.served
    if served.ready:
        return JSONResponse({"status": "ok", "model": served.name})
    problem = served.problem
    return JSONResponse(
        status_code=503, content={"status": "error" if problem else "loading", "error": problem}
    )


@router.get("/model-info")
def model_info(served: Served) -> dict[str, Any]:
    return served.info()


@router.post(
    "/generate", responses={**streamed_or_json("The completion"), **error_responses(400, 404, 413, 422)}
)
async def generate(body: GenerateRequest, request: Request, served: Served, metrics: Metrics) -> Any:
    ids = served.prompt_ids(body.prompt)
    budget = completion.completion_budget(len(ids), body.max_tokens, served.max_len)
    handles = completion.submit(served, [(ids, completion.sampling_params(body, budget))], body.model)
    if body.stream:

        async def events() -> AsyncIterator[bytes]:
            async for delta in completion.deltas(handles[0], request, metrics):
                if delta.text:
                    yield format_sse_event(data_str=json.dumps({"text": delta.text, "token": delta.token_id}))
            result = handles[0].result()
            yield format_sse_event(data_str=json.dumps({"done": True, "finish_reason": result.finish_reason}))

        return EventSourceResponse(completion.guarded_stream(events()))
    (result,) = await completion.collect(handles, request, metrics)
    return {
        "text": result.text,
        "tokens": result.tokens,
        "finish_reason": result.finish_reason,
        "usage": completion.usage(len(ids), len(result.tokens)),
    }


@router.post("/embed", responses=error_responses(400, 413, 422))
async def embed(body: EmbedRequest, served: Served) -> dict[str, Any]:
    texts = body.text if body.text is not None else body.input
    assert texts is not None  # the request model refuses a body with neither
    items = [texts] if isinstance(texts, str) else texts
    results = await asyncio.to_thread(served.embed, items)
    return {
        "model": served.name,
        "dimension": served.info()["config"]["d_model"],
        "embeddings": [pooled for _, pooled in results],
        "token_embeddings": [tokens for tokens, _ in results],
    }


@router.post("/attention", responses=error_responses(400, 413, 422))
async def attention(body: AttentionRequest, served: Served) -> dict[str, Any]:
    try:
        maps = await asyncio.to_thread(served.attention, body.text)
    except LLModelError as error:
        raise APIError(400, str(error), param="text") from None
    return {"model": served.name, **maps}


@router.get("/metrics", response_class=PlainTextResponse)
def prometheus(metrics: Metrics) -> PlainTextResponse:
    """Prometheus' text format."""
    return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
