"""Continuous batching: one background thread admits requests into cache slots and decodes them together.

Between two decode steps the loop runs the other work queued for the model (scoring, embeddings, attention maps:
the loop's thread is the model's one owner), prefills newly submitted requests into free slots (each emits its
first token at once), then runs one batched decode step for every active sequence, samples each row with its own
SamplingParams, hands each new token to its request and retires the finished ones, freeing their slots. A failure
fails the request it belongs to; should the loop itself ever die, :attr:`alive` turns false and every waiting
request fails at once, so the server's health check can say so.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from engine.adapters.multi_adapter import BASE
from engine.errors import BusyError, LLModelError
from engine.generation.detokenize import IncrementalDetokenizer
from engine.generation.sampling import SamplingParams, next_tokens
from engine.generation.scoring import TokenScore, score_rows
from engine.model import Transformer
from engine.server.slot_cache import SlotKVCache
from engine.tokenizer import Tokenizer


class QueueFull(BusyError):
    """Too many requests are waiting for a slot; the server should answer 429/503 and the client retry."""


@dataclass(frozen=True)
class TextDelta:
    """The text one new token adds (may be empty while a character or a possible stop string is incomplete).

    ``token_id``/``logprob`` are None only for a last delta that releases held-back text when a request ends
    on EOS, which is not itself part of the output.
    """

    text: str
    token_id: int | None
    logprob: float | None
    top_logprobs: dict[int, float] | None = None  # the most likely alternatives, when the request asked


@dataclass
class GenerationOutput:
    prompt_tokens: list[int]
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str = "length"  # "stop" (EOS or a stop string) | "length" | "cancelled"
    token_logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)  # per token, when the request asked


_END = object()
T = TypeVar("T")
log = logging.getLogger("llmodel.server")


class RequestHandle:
    """One submitted request: stream its deltas (sync or async), wait for its result, or cancel it."""

    def __init__(
        self,
        batcher: ContinuousBatcher,
        request_id: int,
        prompt_tokens: list[int],
        params: SamplingParams,
        adapter: int = BASE,
    ) -> None:
        self.id = request_id
        self.prompt_tokens = prompt_tokens
        self.params = params
        self.adapter = adapter  # which served adapter generates it (BASE: the base model)
        self._batcher = batcher
        self._lock = threading.Lock()
        self._items: queue.SimpleQueue = queue.SimpleQueue()
        self._async: tuple[asyncio.AbstractEventLoop, asyncio.Queue] | None = None
        self._claimed = False
        self._finished = False
        self._done = threading.Event()
        self._output: GenerationOutput | None = None
        self._error: BaseException | None = None
        self.cancel_requested = False

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self) -> None:
        """The client went away: the request ends (finish_reason "cancelled") and its slot is freed next step."""
        self._batcher._cancel(self)

    def result(self, timeout: float | None = None) -> GenerationOutput:
        """Block until the request ends; raise what ended it if it failed."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"request {self.id} did not finish within {timeout} s")
        if self._error is not None:
            raise self._error
        assert self._output is not None
        return self._output

    def stream(self, timeout: float | None = None) -> Iterator[TextDelta]:
        """Yield each TextDelta as it is produced, then end; leaving the loop early cancels the request."""
        self._claim()
        finished = False
        try:
            while True:
                try:
                    item = self._items.get(timeout=timeout)
                except queue.Empty:
                    raise TimeoutError(f"request {self.id} produced nothing for {timeout} s") from None
                if item is _END:
                    finished = True
                    break
                yield item
        finally:
            if not finished:
                self.cancel()
        if self._error is not None:
            raise self._error

    async def astream(self) -> AsyncIterator[TextDelta]:
        """Async twin of :meth:`stream` for FastAPI/SSE: ``async for delta in handle.astream()``.

        The batcher thread feeds an asyncio.Queue through ``loop.call_soon_threadsafe``, so nothing blocks the
        event loop; a cancelled task or a closed generator (client disconnected) cancels the request.
        """
        self._claim()
        loop = asyncio.get_running_loop()
        items: asyncio.Queue = asyncio.Queue()
        with self._lock:
            while True:  # what arrived before we started listening
                try:
                    items.put_nowait(self._items.get_nowait())
                except queue.Empty:
                    break
            self._async = (loop, items)
        finished = False
        try:
            while True:
                item = await items.get()
                if item is _END:
                    finished = True
                    break
                yield item
        finally:
            if not finished:
                self.cancel()
        if self._error is not None:
            raise self._error

    # -- called by the batcher thread ------------------------------------------------------------------

    def _claim(self) -> None:
        with self._lock:
            if self._claimed:
                raise LLModelError(f"request {self.id} is already being streamed; stream it once")
            self._claimed = True

    def _put(self, item: object) -> None:
        with self._lock:
            if self._async is None:
                self._items.put(item)
                return
            loop, items = self._async
            try:
                loop.call_soon_threadsafe(items.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                self.cancel_requested = True

    def _finish(self, output: GenerationOutput | None, error: BaseException | None = None) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._output, self._error = output, error
        self._put(_END)
        self._done.set()


@dataclass
class _Sequence:
    """The generation state of one admitted request (touched by the batcher thread only)."""

    handle: RequestHandle
    slot: int
    text: IncrementalDetokenizer
    seen: torch.Tensor  # (1, V) bool, for the repetition penalty
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[dict[int, float]] = field(default_factory=list)


class ContinuousBatcher:
    """Serves many generation requests at once from one model with a slot KV cache and a background loop."""

    def __init__(
        self,
        model: Transformer,
        tokenizer: Tokenizer,
        max_batch: int = 8,
        max_queue: int = 64,
        *,
        max_len: int | None = None,
    ) -> None:
        if tokenizer.vocab_size > model.config.vocab_size:
            raise LLModelError(
                f"tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                f"{model.config.vocab_size}; use the tokenizer the model was trained with"
            )
        if max_queue < 0:
            raise LLModelError(f"max_queue must be ≥ 0, got {max_queue}")
        model.eval()
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.max_queue = max_batch, max_queue
        self.cache = SlotKVCache(model, max_batch, max_len)
        self.max_len = self.cache.max_len
        self._device = self.cache.device
        self._cond = threading.Condition()
        self._pending: deque[RequestHandle] = deque()
        self._active: dict[int, _Sequence] = {}
        self._ids = itertools.count(1)
        self._calls: deque[tuple[Callable[[], object], Future]] = deque()
        self._thread: threading.Thread | None = None
        self._running = False
        self._closed = False
        self.failure: BaseException | None = None  # what killed the loop, if anything ever did
        self._steps = self._tokens_generated = self._last_batch_size = 0

    @property
    def alive(self) -> bool:
        """True while the loop runs (or has not been started yet) and nothing has killed it."""
        return self.failure is None and not self._closed

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background loop (idempotent)."""
        with self._cond:
            if self._closed:
                raise LLModelError("this batcher was stopped; create a new one")
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._loop, name="llmodel-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the current step, stop the loop and fail every request still waiting or running."""
        with self._cond:
            self._running, self._closed = False, True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._fail_everything(
            LLModelError("the model server stopped before this request finished; send it again")
        )

    def _fail_everything(self, error: BaseException) -> None:
        with self._cond:
            pending, self._pending = list(self._pending), deque()
            active, self._active = list(self._active.values()), {}
            calls, self._calls = list(self._calls), deque()
        for handle in pending:
            handle._finish(None, error)
        for seq in active:
            self.cache.release(seq.slot)
            seq.handle._finish(None, error)
        for _, future in calls:
            future.set_exception(error)

    def call(self, work: Callable[[], T], timeout: float | None = None) -> T:
        """Run ``work`` (anything that uses the model) on the loop's thread between two steps; return its result.

        The loop's thread is the model's one owner: a forward pass from another thread would race the decode
        steps for the threads and caches of the same model.
        """
        future: Future = Future()
        with self._cond:
            if not self._running or self.failure is not None:
                raise LLModelError("the model server is not running; start it again")
            self._calls.append((work, future))
            self._cond.notify()
        return future.result(timeout)

    def __enter__(self) -> ContinuousBatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests --------------------------------------------------------------------------------------

    def submit(self, prompt_ids: Sequence[int], params: SamplingParams, adapter: int = BASE) -> RequestHandle:
        """Queue a request; raises QueueFull when ``max_queue`` requests already wait for a slot to free up."""
        return self.submit_many([(prompt_ids, params)], adapter)[0]

    def submit_many(
        self, requests: Sequence[tuple[Sequence[int], SamplingParams]], adapter: int = BASE
    ) -> list[RequestHandle]:
        """Queue several requests (one HTTP request's prompts and choices) all together, or none of them; each
        is generated through ``adapter`` (a served adapter's index, or BASE)."""
        handles = [
            RequestHandle(self, next(self._ids), self._checked(ids, params), params, adapter)
            for ids, params in requests
        ]
        capacity = self.max_batch + self.max_queue
        if len(handles) > capacity:
            raise LLModelError(
                f"this request asks for {len(handles)} sequences but the server takes at most {capacity} at once "
                f"({self.max_batch} generating, {self.max_queue} waiting); split it into smaller requests"
            )
        queued = [h for h in handles if h.params.max_new_tokens > 0]
        for handle in handles:
            if handle.params.max_new_tokens == 0:
                handle._finish(GenerationOutput(handle.prompt_tokens))
        if not queued:
            return handles
        with self._cond:
            if self._closed or self.failure is not None:
                raise LLModelError("the batcher is stopped; start a new one")
            # Requests that a free slot will take at the next step are not waiting.
            waiting = len(self._pending) - self.cache.free_slots
            if waiting + len(queued) > self.max_queue:
                raise QueueFull(
                    f"{max(waiting, 0)} requests are already waiting for a slot and this one adds {len(queued)} "
                    f"(max_queue={self.max_queue}); retry later"
                )
            self._pending.extend(queued)
            self._cond.notify()
        return handles

    def _checked(self, prompt_ids: Sequence[int], params: SamplingParams) -> list[int]:
        ids = [int(i) for i in prompt_ids]
        if not ids:
            raise LLModelError("a prompt needs at least one token")
        vocab = self.model.config.vocab_size
        bad = next((i for i in ids if not 0 <= i < vocab), None)
        if bad is not None:
            raise LLModelError(f"token id {bad} is outside the model's vocabulary (vocab_size={vocab})")
        if len(ids) + params.max_new_tokens > self.max_len:
            raise LLModelError(
                f"prompt of {len(ids)} tokens plus {params.max_new_tokens} new tokens exceeds the context of "
                f"{self.max_len}; shorten the prompt or lower max tokens"
            )
        return ids

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {
                "queue_depth": len(self._pending),
                "active": len(self._active),
                "max_batch": self.max_batch,
                "steps": self._steps,
                "tokens_generated": self._tokens_generated,
                "last_batch_size": self._last_batch_size,
            }

    def _cancel(self, handle: RequestHandle) -> None:
        handle.cancel_requested = True
        with self._cond:
            if handle in self._pending:
                self._pending.remove(handle)
                handle._finish(GenerationOutput(handle.prompt_tokens, finish_reason="cancelled"))
            self._cond.notify()

    # -- the loop --------------------------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                while self._turn():
                    pass
        except BaseException as error:  # never expected: the loop is dead, and everyone must hear it at once
            self.failure = error
            with self._cond:
                self._running = False
            self._fail_everything(
                LLModelError(f"the batching loop stopped ({type(error).__name__}: {error})")
            )
            log.exception("the batching loop stopped; the server reports 503 until it is restarted")

    def _turn(self) -> bool:
        """One turn of the loop: queued model work, admissions, one decode step. False once stopped."""
        with self._cond:
            while self._running and not self._pending and not self._active and not self._calls:
                self._cond.wait()
            if not self._running:
                return False
            calls, self._calls = list(self._calls), deque()
            admitted = [
                self._pending.popleft() for _ in range(min(len(self._pending), self.cache.free_slots))
            ]
        for work, future in calls:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work())
                except Exception as error:  # the caller gets it
                    future.set_exception(error)
        for handle in admitted:
            self._admit(handle)
        for seq in [s for s in self._active.values() if s.handle.cancel_requested]:
            self._retire(seq, "cancelled")
        if self._active:
            try:
                self._step()
            except Exception as err:  # a broken step fails the requests in it, never the loop
                for seq in list(self._active.values()):
                    self._retire(seq, error=err)
        return True

    def _admit(self, handle: RequestHandle) -> None:
        """Prefill a request into a free slot and emit its first token; a failure fails this request only."""
        if handle.cancel_requested:
            handle._finish(GenerationOutput(handle.prompt_tokens, finish_reason="cancelled"))
            return
        slot = self.cache.allocate()
        try:
            logits = self.cache.prefill(slot, handle.prompt_tokens, handle.adapter)
        except Exception as err:
            self.cache.release(slot)
            handle._finish(None, err)
            return
        params = handle.params
        seen = torch.zeros((1, self.model.config.vocab_size), dtype=torch.bool, device=self._device)
        seen[0, handle.prompt_tokens] = True
        generator = None
        if params.seed is not None:
            generator = torch.Generator(device=self._device).manual_seed(params.seed)
        seq = _Sequence(handle, slot, IncrementalDetokenizer(self.tokenizer, params.stop), seen, generator)
        with self._cond:
            self._active[slot] = seq
        try:
            (choice,) = self._sample([seq], logits.unsqueeze(0))
            if isinstance(choice, Exception):
                raise choice
            self._accept(seq, choice)
        except Exception as err:
            self._retire(seq, error=err)

    def _step(self) -> None:
        seqs = [self._active[slot] for slot in sorted(self._active)]
        logits = self.cache.decode(
            [s.slot for s in seqs], [s.tokens[-1] for s in seqs], [s.handle.adapter for s in seqs]
        )
        with self._cond:
            self._steps += 1
            self._last_batch_size = len(seqs)
        for seq, choice in zip(seqs, self._sample(seqs, logits), strict=True):
            if isinstance(choice, Exception):
                self._retire(seq, error=choice)
            else:
                self._accept(seq, choice)

    def _sample(self, seqs: list[_Sequence], logits: torch.Tensor) -> list[TokenScore | Exception]:
        """One token per row, each row with its own params and generator, scored on the raw logits; a row whose
        sampling fails gets its exception instead (it fails that request only)."""
        chosen: list[int | Exception] = []
        for i, seq in enumerate(seqs):
            try:
                chosen.append(int(next_tokens(logits[i : i + 1], seq.handle.params, seq.seen, seq.generator)))
            except Exception as error:
                chosen.append(error)
        tokens = {i: c for i, c in enumerate(chosen) if not isinstance(c, Exception)}
        if not tokens:
            return [c for c in chosen if isinstance(c, Exception)]
        rows = list(tokens)
        top = max(seqs[i].handle.params.logprobs for i in rows)
        scores = iter(score_rows(logits[rows], list(tokens.values()), top))
        return [c if isinstance(c, Exception) else next(scores) for c in chosen]

    def _accept(self, seq: _Sequence, choice: TokenScore) -> None:
        params = seq.handle.params
        token, logprob = choice.token, choice.logprob
        top = dict(list(choice.top.items())[: params.logprobs]) if params.logprobs else None
        if params.stop_at_eos and token == self.model.config.eos_token_id:
            rest = seq.text.finish()
            if rest:
                seq.handle._put(TextDelta(rest, None, None))
            self._retire(seq, "stop")
            return
        seq.tokens.append(token)
        seq.logprobs.append(logprob)
        if top is not None:
            seq.top_logprobs.append(top)
        seq.seen[0, token] = True
        with self._cond:
            self._tokens_generated += 1
        text = seq.text.push(token)
        if seq.text.stopped:
            seq.handle._put(TextDelta(text, token, logprob, top))
            self._retire(seq, "stop")
        elif len(seq.tokens) >= params.max_new_tokens:
            text += seq.text.finish()
            seq.handle._put(TextDelta(text, token, logprob, top))
            self._retire(seq, "stop" if seq.text.stopped else "length")
        else:
            seq.handle._put(TextDelta(text, token, logprob, top))

    def _retire(self, seq: _Sequence, reason: str = "", error: BaseException | None = None) -> None:
        with self._cond:
            if self._active.pop(seq.slot, None) is None:
                return
        self.cache.release(seq.slot)
        output = None
        if error is None:
            output = GenerationOutput(
                seq.handle.prompt_tokens,
                seq.tokens,
                seq.text.final_text,
                reason,
                seq.logprobs,
                seq.top_logprobs,
            )
        seq.handle._finish(output, error)
