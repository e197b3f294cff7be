"""The model server (FastAPI): the seed's /generate /embed /health /model-info, OpenAI's /v1/..., vLLM's
/tokenize /detokenize /tokenizer_info, and Prometheus /metrics. One ContinuousBatcher serves every request."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.sse import EventSourceResponse, format_sse_event
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import LLModelError
from engine.generation import SamplingParams
from engine.serving.errors import APIError, error_response
from engine.serving.guards import GuardMiddleware, RateLimiter
from engine.serving.metrics import ServerMetrics
from engine.serving.protocol import (
    AttentionRequest,
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbedRequest,
    GenerateRequest,
    SamplingFields,
    TokenizeRequest,
)
from engine.serving.service import ModelService
from engine.tokenizer import ROLE_MARKERS

MAX_BODY_BYTES = 1 << 20


def create_server(
    service: ModelService, *, api_key: str | None = None, rate_limit: float | None = None, max_body: int = MAX_BODY_BYTES
) -> FastAPI:
    """Build the server app around ``service`` (which may still be loading)."""
    app = FastAPI(title="LLModel model server", version="1")
    metrics = ServerMetrics(lambda: service.batcher.stats() if service.ready else {})
    limiter = RateLimiter(rate_limit) if rate_limit else None
    app.add_middleware(GuardMiddleware, api_key=api_key, limiter=limiter, max_body=max_body)

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        endpoint = request.scope.get("route").path if request.scope.get("route") else "other"
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(APIError)
    async def api_error(_: Request, error: APIError) -> JSONResponse:
        return error_response(error.status, error.message, param=error.param, code=error.code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(422, f"{where}: {first.get('msg')}", param=where or None, code="invalid_parameter")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail))

    @app.exception_handler(LLModelError)
    async def user_error(_: Request, error: LLModelError) -> JSONResponse:
        status = 429 if type(error).__name__ == "QueueFull" else 400
        return error_response(status, str(error))

    @app.exception_handler(Exception)
    async def crash(_: Request, error: Exception) -> JSONResponse:  # never a traceback to the client
        return error_response(500, f"internal error ({type(error).__name__}); see the server log")

    def ready() -> ModelService:
        if not service.ready:
            raise APIError(503, service.error or "the model is still loading; retry shortly", code="model_loading")
        return service

    # -- the seed's endpoints -------------------------------------------------------------------

    @app.get("/health")
    def health() -> JSONResponse:
        if service.ready:
            return JSONResponse({"status": "ok", "model": service.name})
        status = "error" if service.error else "loading"
        return JSONResponse(status_code=503, content={"status": status, "error": service.error})

    @app.get("/model-info")
    def model_info() -> dict[str, Any]:
        return ready().info()

    @app.post("/generate")
    async def generate(body: GenerateRequest, request: Request) -> Any:
        svc = ready()
        ids = svc.loaded.tokenizer.encode(body.prompt, add_bos=True)
        handle = _submit(svc, ids, body, body.max_tokens, param="max_tokens")
        if body.stream:
            async def events() -> AsyncIterator[bytes]:
                async for delta in _deltas(handle, request, metrics):
                    yield format_sse_event(data_str=json.dumps({"text": delta.text, "token": delta.token_id}))
                result = handle.result()
                yield format_sse_event(data_str=json.dumps({"done": True, "finish_reason": result.finish_reason}))

            return EventSourceResponse(events())
        result = await _collect(handle, request, metrics)
        return {
            "text": result.text, "tokens": result.tokens, "finish_reason": result.finish_reason,
            "usage": _usage(len(ids), len(result.tokens)),
        }  # fmt: skip

    @app.post("/embed")
    async def embed(body: EmbedRequest) -> dict[str, Any]:
        svc = ready()
        texts = body.text if body.text is not None else body.input
        if texts is None:
            raise APIError(422, "give 'text' (a string or a list of strings)", param="text")
        items = [texts] if isinstance(texts, str) else texts
        results = [await asyncio.to_thread(svc.embed, t) for t in items]
        return {
            "model": svc.name, "dimension": svc.loaded.model.config.d_model,
            "embeddings": [pooled for _, pooled in results], "token_embeddings": [tokens for tokens, _ in results],
        }  # fmt: skip

    @app.post("/attention")
    async def attention(body: AttentionRequest) -> dict[str, Any]:
        svc = ready()
        try:
            maps = await asyncio.to_thread(svc.attention, body.text)
        except LLModelError as error:
            raise APIError(400, str(error), param="text") from None
        return {"model": svc.name, **maps}

    # -- OpenAI ------------------------------------------------------------------------------------

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        svc = ready()
        return {"object": "list", "data": [{"id": svc.name, "object": "model", "created": int(svc.started), "owned_by": "llmodel"}]}

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Any:
        svc = ready()
        prompts = _prompt_ids(svc, body.prompt)
        jobs = [(p, i) for p in range(len(prompts)) for i in range(body.n)]
        handles = [_submit(svc, prompts[p], body, body.max_tokens, param="max_tokens", offset=i) for p, i in jobs]
        created, ident = int(time.time()), f"cmpl-{uuid.uuid4().hex}"
        prompt_texts = [svc.loaded.tokenizer.decode(ids) for ids in prompts]
        if body.stream:
            return EventSourceResponse(
                _stream_completion(svc, body, request, handles, jobs, prompt_texts, created, ident, metrics)
            )
        results = await asyncio.gather(*(_collect(h, request, metrics) for h in handles))
        choices = []
        for index, ((p, _), result) in enumerate(zip(jobs, results, strict=True)):
            text = (prompt_texts[p] if body.echo else "") + result.text
            logprobs = None
            if body.logprobs is not None:
                logprobs = await asyncio.to_thread(_logprobs, svc, prompts[p], result.tokens, body.echo, body.logprobs)
            choices.append({"index": index, "text": text, "logprobs": logprobs, "finish_reason": result.finish_reason})
        prompt_tokens = sum(len(ids) for ids in prompts)
        completion_tokens = sum(len(r.tokens) for r in results)
        return {
            "id": ident, "object": "text_completion", "created": created, "model": svc.name, "choices": choices,
            "usage": _usage(prompt_tokens, completion_tokens),
        }  # fmt: skip

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        svc = ready()
        text = svc.loaded.tokenizer.apply_chat_template([m.model_dump() for m in body.messages])
        ids = svc.loaded.tokenizer.encode(text, add_bos=True)
        max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
        stops = [*_stops(body.stop), *ROLE_MARKERS.values()]  # a reply ends where the next turn would begin
        handles = [_submit(svc, ids, body, max_tokens, param="max_tokens", offset=i, stop=stops) for i in range(body.n)]
        created, ident = int(time.time()), f"chatcmpl-{uuid.uuid4().hex}"
        if body.stream:
            return EventSourceResponse(_stream_chat(svc, body, request, handles, len(ids), created, ident, metrics))
        results = await asyncio.gather(*(_collect(h, request, metrics) for h in handles))
        choices = [
            {"index": i, "message": {"role": "assistant", "content": r.text.strip()}, "logprobs": None, "finish_reason": r.finish_reason}
            for i, r in enumerate(results)
        ]
        return {
            "id": ident, "object": "chat.completion", "created": created, "model": svc.name, "choices": choices,
            "usage": _usage(len(ids) * body.n, sum(len(r.tokens) for r in results)),
        }  # fmt: skip

    # -- vLLM's tokenizer endpoints -----------------------------------------------------------------

    @app.post("/tokenize")
    def tokenize(body: TokenizeRequest) -> dict[str, Any]:
        svc = ready()
        tokenizer = svc.loaded.tokenizer
        if body.messages is not None:
            text = tokenizer.apply_chat_template([m.model_dump() for m in body.messages], add_generation_prompt=body.add_generation_prompt)
        elif body.prompt is not None:
            text = body.prompt
        else:
            raise APIError(422, "give 'prompt' or 'messages'", param="prompt")
        tokens = tokenizer.encode(text, add_bos=body.add_special_tokens)
        return {"count": len(tokens), "max_model_len": svc.loaded.model.config.max_len, "tokens": tokens}

    @app.post("/detokenize")
    def detokenize(body: DetokenizeRequest) -> dict[str, Any]:
        svc = ready()
        vocab = svc.loaded.tokenizer.vocab_size
        bad = next((t for t in body.tokens if not 0 <= t < vocab), None)
        if bad is not None:
            raise APIError(400, f"token id {bad} is outside the vocabulary (0..{vocab - 1})", param="tokens")
        return {"prompt": svc.loaded.tokenizer.decode(body.tokens)}

    @app.get("/tokenizer_info")
    def tokenizer_info() -> dict[str, Any]:
        svc = ready()
        tokenizer = svc.loaded.tokenizer
        return {
            "tokenizer_class": "SentencePieceBPE", "vocab_size": tokenizer.vocab_size,
            "model_max_length": svc.loaded.model.config.max_len,
            "bos_token": tokenizer.id_to_piece(tokenizer.bos_id), "eos_token": tokenizer.id_to_piece(tokenizer.eos_id),
            "pad_token": tokenizer.id_to_piece(tokenizer.pad_id), "unk_token": tokenizer.id_to_piece(tokenizer.unk_id),
            "chat_template": "".join(f"{marker}\\n{{content}}\\n" for marker in ROLE_MARKERS.values()),
        }  # fmt: skip

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


# -- helpers ----------------------------------------------------------------------------------------


def _stops(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


def _prompt_ids(svc: ModelService, prompt: str | list[str] | list[int] | list[list[int]]) -> list[list[int]]:
    """OpenAI's four prompt forms → token-id lists."""
    tokenizer = svc.loaded.tokenizer
    if isinstance(prompt, str):
        return [tokenizer.encode(prompt, add_bos=True)]
    if not prompt:
        raise APIError(422, "prompt must not be empty", param="prompt")
    if all(isinstance(p, int) for p in prompt):
        lists = [list(prompt)]
    elif all(isinstance(p, str) for p in prompt):
        return [tokenizer.encode(p, add_bos=True) for p in prompt]
    else:
        lists = [list(p) for p in prompt]
    vocab = tokenizer.vocab_size
    for ids in lists:
        if not ids or any(not 0 <= t < vocab for t in ids):
            raise APIError(400, f"token-id prompts must be non-empty lists of ids in 0..{vocab - 1}", param="prompt")
    return lists


def _submit(
    svc: ModelService, ids: list[int], body: SamplingFields, max_tokens: int | None, *, param: str,
    offset: int = 0, stop: list[str] | None = None,
) -> Any:  # fmt: skip
    """Check the context budget and queue one generation; max_tokens defaults to the room left."""
    limit = svc.loaded.model.config.max_len
    room = limit - len(ids)
    wanted = room if max_tokens is None else max_tokens
    if len(ids) + wanted > limit or room < 0:
        raise APIError(
            400,
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{len(ids) + wanted} tokens ({len(ids)} in the prompt, {wanted} for the completion). "
            "Please reduce the prompt or max_tokens.",
            param=param, code="context_length_exceeded",
        )  # fmt: skip
    params = SamplingParams(
        max_new_tokens=wanted, temperature=body.temperature, top_k=body.top_k,
        top_p=body.top_p if body.top_p < 1.0 else None, repetition_penalty=body.repetition_penalty,
        do_sample=body.temperature > 0, stop=stop if stop is not None else _stops(body.stop),
        stop_at_eos=not body.ignore_eos,
        seed=None if body.seed is None else body.seed + offset,
    )  # fmt: skip
    return svc.batcher.submit(ids, params)


async def _deltas(handle: Any, request: Request, metrics: ServerMetrics) -> AsyncIterator[Any]:
    """A request's token deltas; a client that goes away cancels its generation."""
    started, first = time.perf_counter(), True
    try:
        async for delta in handle.astream():
            if delta.token_id is not None:
                if first:
                    metrics.ttft.observe(time.perf_counter() - started)
                    first = False
                metrics.generated_tokens.inc()
            if delta.text:  # held-back text arrives later; an empty chunk tells the client nothing
                yield delta
    finally:
        if await request.is_disconnected():
            handle.cancel()


async def _collect(handle: Any, request: Request, metrics: ServerMetrics) -> Any:
    async for _ in _deltas(handle, request, metrics):
        pass
    result = handle.result()
    metrics.prompt_tokens.inc(len(result.prompt_tokens))
    return result


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _logprobs(svc: ModelService, prompt: list[int], completion: list[int], echo: bool, top: int) -> dict[str, Any]:
    """Legacy completions logprobs: one entry per returned token (prompt tokens first when echoed, the first null)."""
    ids = prompt + completion
    chosen, best = svc.score(ids, top=top)
    start = 0 if echo else len(prompt)
    tokenizer = svc.loaded.tokenizer
    pieces = [tokenizer.decode([t]) for t in ids]
    tokens, offsets, offset = [], [], 0
    for position in range(start, len(ids)):
        tokens.append(pieces[position])
        offsets.append(offset)
        offset += len(pieces[position])
    top_logprobs = [None if b is None else {tokenizer.decode([t]): v for t, v in b.items()} for b in best[start:]]
    return {"tokens": tokens, "token_logprobs": chosen[start:], "top_logprobs": top_logprobs, "text_offset": offsets}


async def _merge(streams: list[AsyncIterator[Any]]) -> AsyncIterator[tuple[int, Any]]:
    """Interleave several async streams as (index, item) in arrival order."""
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    done = object()

    async def pump(index: int, stream: AsyncIterator[Any]) -> None:
        async for item in stream:
            await queue.put((index, item))
        await queue.put((index, done))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    remaining = len(tasks)
    try:
        while remaining:
            index, item = await queue.get()
            if item is done:
                remaining -= 1
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()


def _chunk(**fields: Any) -> bytes:
    return format_sse_event(data_str=json.dumps(fields))


async def _stream_completion(
    svc: ModelService, body: CompletionRequest, request: Request, handles: list[Any], jobs: list[tuple[int, int]],
    prompt_texts: list[str], created: int, ident: str, metrics: ServerMetrics,
) -> AsyncIterator[bytes]:  # fmt: skip
    common = {"id": ident, "object": "text_completion", "created": created, "model": svc.name}
    if body.echo:
        for index, (p, _) in enumerate(jobs):
            yield _chunk(**common, choices=[{"index": index, "text": prompt_texts[p], "logprobs": None, "finish_reason": None}])
    async for index, delta in _merge([_deltas(h, request, metrics) for h in handles]):
        yield _chunk(**common, choices=[{"index": index, "text": delta.text, "logprobs": None, "finish_reason": None}])
    results = [h.result() for h in handles]
    for index, result in enumerate(results):
        yield _chunk(**common, choices=[{"index": index, "text": "", "logprobs": None, "finish_reason": result.finish_reason}])
    if body.stream_options and body.stream_options.include_usage:
        prompt_tokens = sum(len(r.prompt_tokens) for r in results)
        yield _chunk(**common, choices=[], usage=_usage(prompt_tokens, sum(len(r.tokens) for r in results)))
    yield format_sse_event(data_str="[DONE]")


async def _stream_chat(
    svc: ModelService, body: ChatCompletionRequest, request: Request, handles: list[Any], prompt_len: int,
    created: int, ident: str, metrics: ServerMetrics,
) -> AsyncIterator[bytes]:  # fmt: skip
    common = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": svc.name}
    for index in range(len(handles)):
        yield _chunk(**common, choices=[{"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}])
    async for index, delta in _merge([_deltas(h, request, metrics) for h in handles]):
        yield _chunk(**common, choices=[{"index": index, "delta": {"content": delta.text}, "logprobs": None, "finish_reason": None}])
    results = [h.result() for h in handles]
    for index, result in enumerate(results):
        yield _chunk(**common, choices=[{"index": index, "delta": {}, "logprobs": None, "finish_reason": result.finish_reason}])
    if body.stream_options and body.stream_options.include_usage:
        yield _chunk(**common, choices=[], usage=_usage(prompt_len * len(handles), sum(len(r.tokens) for r in results)))
    yield format_sse_event(data_str="[DONE]")
