"""Tokens to text as they are generated: one incremental detokenizer for every way LLModel generates.

Decoding each new token alone breaks multi-byte characters and word-initial spaces; decoding the whole
continuation for every token costs O(n²). :class:`IncrementalDetokenizer` decodes a short window instead, holds
back what may still change (an incomplete character, the possible start of a stop string) and cuts the text at
the first stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.tokenizer import Tokenizer


class IncrementalDetokenizer:
    """Turns tokens into text deltas: waits out incomplete characters, holds back a possible start of a stop
    string, and cuts the text at the first stop string."""

    def __init__(self, tokenizer: Tokenizer, stops: Sequence[str]) -> None:
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.tokens: list[int] = []
        self.text = ""  # decoded so far (complete characters only)
        self.emitted = 0  # characters of ``text`` handed out so far
        self.stopped = False
        self._prefix = self._read = 0

    @property
    def final_text(self) -> str:
        """The text handed out so far: the request's text once it has ended."""
        return self.text[: self.emitted]

    def push(self, token: int) -> str:
        """Add a token; return the text that became safe to hand out (possibly empty)."""
        self.tokens.append(token)
        self.text += self._settle(final=False)
        return self._release(final=False)

    def finish(self) -> str:
        """The request ends: return whatever was still held back."""
        self.text += self._settle(final=True)
        return self._release(final=True)

    def _settle(self, *, final: bool) -> str:
        # Decode a short window (the last settled chunk + new tokens) instead of the whole continuation each
        # time; the window's first token is shared by both decodes, so their difference is the new text.
        before = self.tokenizer.decode(self.tokens[self._prefix : self._read])
        after = self.tokenizer.decode(self.tokens[self._prefix :])
        if len(after) > len(before) and (final or not after.endswith("\ufffd")):
            self._prefix, self._read = self._read, len(self.tokens)
            return after[len(before) :]
        return ""

    def _release(self, *, final: bool) -> str:
        if self.stopped:
            return ""
        start = self.emitted
        # A stop string cannot start inside the emitted text: its beginning would have been held back.
        cuts = [c for c in (self.text.find(s, start) for s in self.stops) if c != -1]
        if cuts:
            self.stopped = True
            self.text = self.text[: min(cuts)]
            end = len(self.text)
        else:
            end = len(self.text) if final else len(self.text) - self._held_back(start)
        new = self.text[start:end]
        self.emitted = end
        return new

    def _held_back(self, start: int) -> int:
        """Length of the longest tail of the new text that could grow into a stop string."""
        tail = self.text[start:]
        return max(
            (k for s in self.stops for k in range(min(len(s) - 1, len(tail)), 0, -1) if tail.endswith(s[:k])),
            default=0,
        )
