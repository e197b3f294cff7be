"""From an HTTP request to generations and back: prompts, the context budget, queueing, streaming, usage.

Shared by the seed's ``/generate`` and OpenAI's completions and chat completions.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.sse import format_sse_event

from engine.errors import LLModelError
from engine.generation import SamplingParams
from engine.generation.sampling import SEED_RANGE
from engine.server.errors import APIError
from engine.server.metrics import ServerMetrics
from engine.server.protocol import SamplingFields
from engine.server.served_model import ServedModel

if TYPE_CHECKING:
    from engine.server.batcher import GenerationOutput, RequestHandle, TextDelta

DONE = format_sse_event(data_str="[DONE]")
DISCONNECT_POLL = 0.25  # seconds between checks that a waiting client is still there


def stop_list(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


def prompt_id_lists(
    served: ServedModel, prompt: str | list[str] | list[int] | list[list[int]]
) -> list[list[int]]:
    """OpenAI's four prompt forms → token-id lists."""
    if isinstance(prompt, str):
        return [served.prompt_ids(prompt)]
    # The request model admits no empty or mixed list: a list is all texts, all ids or all id lists.
    texts = [p for p in prompt if isinstance(p, str)]
    if texts:
        return [served.prompt_ids(text) for text in texts]
    ids = [p for p in prompt if isinstance(p, int)]
    lists = [ids] if ids else [list(p) for p in prompt if isinstance(p, list)]
    vocab = served.tokenizer.vocab_size
    for ids in lists:
        if any(t >= vocab for t in ids):
            raise APIError(400, f"token-id prompts must hold ids in 0..{vocab - 1}", param="prompt")
    return lists


def completion_budget(prompt_len: int, max_tokens: int | None, limit: int) -> int:
    """The tokens a completion may generate: ``max_tokens``, or the room the prompt leaves when it is omitted."""
    if max_tokens is None:
        if prompt_len >= limit:
            raise APIError(
                400,
                f"This model's maximum context length is {limit} tokens. However, your prompt has {prompt_len} "
                "tokens, which leaves no room for a completion. Please reduce the prompt.",
                param="prompt",
                code="context_length_exceeded",
            )
        return limit - prompt_len
    if prompt_len + max_tokens > limit:
        raise APIError(
            400,
            f"This model's maximum context length is {limit} tokens. However, you requested "
            f"{prompt_len + max_tokens} tokens ({prompt_len} in the prompt, {max_tokens} for the completion). "
            "Please reduce the prompt or max_tokens.",
            param="max_tokens",
            code="context_length_exceeded",
        )
    return max_tokens


def sampling_params(
    body: SamplingFields,
    max_new_tokens: int,
    *,
    choice: int = 0,
    stop: list[str] | None = None,
    logprobs: int = 0,
) -> SamplingParams:
    """The batcher's settings for one choice of a request; choice ``i`` samples with ``seed + i``."""
    seed = None
    if body.seed is not None:  # stays in the seed range for every choice
        low, high = SEED_RANGE
        seed = low + (body.seed + choice - low) % (high - low + 1)
    return SamplingParams(
        max_new_tokens=max_new_tokens,
        temperature=body.temperature,
        top_k=body.top_k,
        top_p=body.top_p if body.top_p < 1.0 else None,
        repetition_penalty=body.repetition_penalty,
        do_sample=body.temperature > 0,
        stop=stop if stop is not None else stop_list(body.stop),
        stop_at_eos=not body.ignore_eos,
        seed=seed,
        logprobs=logprobs,
    )


def submit(
    served: ServedModel, requests: Sequence[tuple[list[int], SamplingParams]], model: str | None = None
) -> list[RequestHandle]:
    """Queue one HTTP request's generations together through the ``model`` it names (the base or an adapter):
    all of them, or none (a failure queues nothing)."""
    assert served.batcher is not None
    return served.batcher.submit_many(requests, served.adapter_index(model))


async def deltas(handle: RequestHandle, request: Request, metrics: ServerMetrics) -> AsyncIterator[TextDelta]:
    """A request's token deltas; a client that goes away cancels its generation."""
    started, first = time.perf_counter(), True
    try:
        async for delta in handle.astream():
            if delta.token_id is not None:
                if first:
                    metrics.ttft.observe(time.perf_counter() - started)
                    first = False
                metrics.generated_tokens.inc()
            yield delta
    finally:
        if not handle.done:  # the stream was left early: the client went away, or a sibling failed
            handle.cancel()


async def collect(
    handles: list[RequestHandle], request: Request, metrics: ServerMetrics
) -> list[GenerationOutput]:
    """Wait for every handle's result; if one fails (or the client leaves), the others are cancelled."""

    async def one(handle: RequestHandle) -> GenerationOutput:
        async for _ in deltas(handle, request, metrics):
            pass
        result = handle.result()
        metrics.prompt_tokens.inc(len(result.prompt_tokens))
        return result

    async def watch() -> None:  # nothing else notices a client that leaves before a plain response
        while not await request.is_disconnected():
            await asyncio.sleep(DISCONNECT_POLL)
        for handle in handles:
            handle.cancel()

    tasks = [asyncio.ensure_future(one(h)) for h in handles]
    watcher = asyncio.ensure_future(watch())
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        watcher.cancel()
        for task, handle in zip(tasks, handles, strict=True):
            if not task.done():
                task.cancel()
            if not handle.done:
                handle.cancel()


async def merge(streams: list[AsyncIterator[Any]]) -> AsyncIterator[tuple[int, Any]]:
    """Interleave several async streams as (index, item) in arrival order; an error in one ends them all."""
    queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()
    done = object()

    async def pump(index: int, stream: AsyncIterator[Any]) -> None:
        try:
            async for item in stream:
                await queue.put((index, item))
        except BaseException as error:  # handed to the consumer, who raises it
            await queue.put((index, error))
            return
        await queue.put((index, done))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    remaining = len(tasks)
    try:
        while remaining:
            index, item = await queue.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield index, item
    finally:
        for task in tasks:
            task.cancel()


def usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def sse(**fields: Any) -> bytes:
    return format_sse_event(data_str=json.dumps(fields))


def sse_error(error: BaseException) -> bytes:
    """An error after a stream has started: one OpenAI-shaped error event (``[DONE]`` follows)."""
    if isinstance(error, APIError):
        return format_sse_event(data_str=json.dumps(error.body()))
    message = str(error) if isinstance(error, LLModelError) else f"internal error ({type(error).__name__})"
    status = 400 if isinstance(error, LLModelError) else 500
    return format_sse_event(data_str=json.dumps(APIError(status, message).body()))


async def guarded_stream(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A stream that always ends: an error mid-stream becomes an error event, then ``[DONE]``."""
    try:
        async for event in events:
            yield event
    except asyncio.CancelledError:
        raise
    except Exception as error:
        yield sse_error(error)
        yield DONE
