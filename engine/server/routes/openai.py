"""OpenAI's API: ``/v1/models``, ``/v1/completions`` (every prompt form, ``n``, ``echo`` + ``logprobs``) and
``/v1/chat/completions`` (the tokenizer's chat template), streamed or not."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.sse import EventSourceResponse

from engine.server import completion
from engine.server.batcher import GenerationOutput, RequestHandle
from engine.server.completion import DONE, sse
from engine.server.dependencies import PROTECTED, Metrics, Served
from engine.server.errors import error_responses, streamed_or_json
from engine.server.metrics import ServerMetrics
from engine.server.protocol import ChatCompletionRequest, CompletionRequest
from engine.server.served_model import ServedModel
from engine.tokenizer import ROLE_MARKERS

router = APIRouter(prefix="/v1", dependencies=PROTECTED, responses=error_responses(401, 429, 503))
GENERATION_ERRORS = error_responses(400, 404, 413, 422)


@router.get("/models")
def models(served: Served) -> dict[str, Any]:
    """The base model, then each adapter served over it (with the base as its ``parent``, as vLLM lists LoRA)."""
    base = {"id": served.name, "object": "model", "created": int(served.started), "owned_by": "llmodel"}
    adapters = [
        {**base, "id": name, "parent": served.name, "root": str(served.options.adapters[name])}
        for name in served.adapters
    ]
    return {"object": "list", "data": [base, *adapters]}


@router.post("/completions", responses={**streamed_or_json("The completion"), **GENERATION_ERRORS})
async def completions(body: CompletionRequest, request: Request, served: Served, metrics: Metrics) -> Any:
    prompts = completion.prompt_id_lists(served, body.prompt)
    jobs = [(p, i) for p in range(len(prompts)) for i in range(body.n)]
    requests = []
    for p, i in jobs:
        budget = completion.completion_budget(len(prompts[p]), body.max_tokens, served.max_len)
        requests.append(
            (prompts[p], completion.sampling_params(body, budget, choice=i, logprobs=body.logprobs or 0))
        )
    handles = completion.submit(served, requests, body.model)
    created, ident = int(time.time()), f"cmpl-{uuid.uuid4().hex}"
    tokenizer = served.tokenizer
    prompt_texts = [tokenizer.decode(ids) for ids in prompts]
    if body.stream:
        events = _stream_completion(
            served, body, request, handles, jobs, prompt_texts, created, ident, metrics
        )
        return EventSourceResponse(completion.guarded_stream(events))
    results = await completion.collect(handles, request, metrics)
    choices = []
    for index, ((p, _), result) in enumerate(zip(jobs, results, strict=True)):
        text = (prompt_texts[p] if body.echo else "") + result.text
        logprobs = None
        if body.logprobs is not None:
            logprobs = await _logprobs(served, prompts[p], result, body.echo, body.logprobs, body.model)
        choices.append(
            {"index": index, "text": text, "logprobs": logprobs, "finish_reason": result.finish_reason}
        )
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": served.name,
        "choices": choices,
        "usage": completion.usage(sum(len(ids) for ids in prompts), sum(len(r.tokens) for r in results)),
    }


@router.post("/chat/completions", responses={**streamed_or_json("The chat completion"), **GENERATION_ERRORS})
async def chat_completions(
    body: ChatCompletionRequest, request: Request, served: Served, metrics: Metrics
) -> Any:
    tokenizer = served.tokenizer
    ids = served.prompt_ids(tokenizer.apply_chat_template([m.model_dump() for m in body.messages]))
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    budget = completion.completion_budget(len(ids), max_tokens, served.max_len)
    stops = [
        *completion.stop_list(body.stop),
        *ROLE_MARKERS.values(),
    ]  # a reply ends where the next turn would begin
    handles = completion.submit(
        served,
        [(ids, completion.sampling_params(body, budget, choice=i, stop=stops)) for i in range(body.n)],
        body.model,
    )
    created, ident = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        events = _stream_chat(served, body, request, handles, len(ids), created, ident, metrics)
        return EventSourceResponse(completion.guarded_stream(events))
    results = await completion.collect(handles, request, metrics)
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": r.text.strip()},
            "logprobs": None,
            "finish_reason": r.finish_reason,
        }
        for i, r in enumerate(results)
    ]
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": served.name,
        "choices": choices,
        "usage": completion.usage(len(ids) * body.n, sum(len(r.tokens) for r in results)),
    }


async def _logprobs(
    served: ServedModel, prompt: list[int], result: GenerationOutput, echo: bool, top: int, model: str | None
) -> dict[str, Any]:
    """Legacy completions logprobs: one entry per returned token (prompt tokens first when echoed, the first null).

    Generated tokens carry the scores the batcher computed while sampling them; only an echoed prompt is scored
    by a forward pass.
    """
    tokenizer = served.tokenizer
    chosen: list[float | None] = []
    best: list[dict[int, float] | None] = []
    if echo:
        scores = await asyncio.to_thread(served.score, prompt, top, served.adapter_index(model))
        chosen += [None if s is None else s.logprob for s in scores]
        best += [None if s is None else s.top for s in scores]
    chosen += result.token_logprobs
    best += result.top_logprobs or [{} for _ in result.tokens]
    ids = (prompt if echo else []) + result.tokens
    pieces = [tokenizer.decode([t]) for t in ids]
    offsets, offset = [], 0
    for piece in pieces:
        offsets.append(offset)
        offset += len(piece)
    top_logprobs = [None if b is None else {tokenizer.decode([t]): v for t, v in b.items()} for b in best]
    return {"tokens": pieces, "token_logprobs": chosen, "top_logprobs": top_logprobs, "text_offset": offsets}


async def _stream_completion(
    served: ServedModel,
    body: CompletionRequest,
    request: Request,
    handles: list[RequestHandle],
    jobs: list[tuple[int, int]],
    prompt_texts: list[str],
    created: int,
    ident: str,
    metrics: ServerMetrics,
) -> AsyncIterator[bytes]:
    common = {"id": ident, "object": "text_completion", "created": created, "model": served.name}
    if body.echo:
        for index, (p, _) in enumerate(jobs):
            yield sse(
                **common,
                choices=[{"index": index, "text": prompt_texts[p], "logprobs": None, "finish_reason": None}],
            )
    async for index, delta in completion.merge([completion.deltas(h, request, metrics) for h in handles]):
        if delta.text:
            yield sse(
                **common,
                choices=[{"index": index, "text": delta.text, "logprobs": None, "finish_reason": None}],
            )
    results = [h.result() for h in handles]
    for index, result in enumerate(results):
        yield sse(
            **common,
            choices=[{"index": index, "text": "", "logprobs": None, "finish_reason": result.finish_reason}],
        )
    if body.stream_options and body.stream_options.include_usage:
        prompt_tokens = sum(len(r.prompt_tokens) for r in results)
        yield sse(
            **common, choices=[], usage=completion.usage(prompt_tokens, sum(len(r.tokens) for r in results))
        )
    yield DONE


async def _stream_chat(
    served: ServedModel,
    body: ChatCompletionRequest,
    request: Request,
    handles: list[RequestHandle],
    prompt_len: int,
    created: int,
    ident: str,
    metrics: ServerMetrics,
) -> AsyncIterator[bytes]:
    common = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": served.name}
    for index in range(len(handles)):
        yield sse(
            **common,
            choices=[
                {
                    "index": index,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": None,
                }
            ],
        )
    async for index, delta in completion.merge([completion.deltas(h, request, metrics) for h in handles]):
        if delta.text:
            yield sse(
                **common,
                choices=[
                    {
                        "index": index,
                        "delta": {"content": delta.text},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            )
    results = [h.result() for h in handles]
    for index, result in enumerate(results):
        yield sse(
            **common,
            choices=[{"index": index, "delta": {}, "logprobs": None, "finish_reason": result.finish_reason}],
        )
    if body.stream_options and body.stream_options.include_usage:
        yield sse(
            **common,
            choices=[],
            usage=completion.usage(prompt_len * len(handles), sum(len(r.tokens) for r in results)),
        )
    yield DONE
