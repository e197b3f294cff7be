"""User-facing errors: each carries a one-line message naming the problem and the fix."""

from __future__ import annotations


class LLModelError(Exception):
    """A problem caused by input or state the user controls; the CLI prints it as one line."""


class ConfigError(LLModelError):
    """A model or training config is invalid (unknown key, wrong type, inconsistent shape)."""


class DataError(LLModelError):
    """Input data is missing, empty or malformed."""


class VocabMismatchError(LLModelError):
    """Tokenizer, dataset and model disagree on the vocabulary size."""


class CheckpointError(LLModelError):
    """A checkpoint is missing, incomplete, corrupt or built for another config."""


class DiskFullError(LLModelError):
    """The disk filled while writing: the message names the path, the space it needs and what is still good."""

    def __init__(self, path: str, need: str, last_good: str) -> None:
        self.path, self.need, self.last_good = path, need, last_good
        super().__init__(f"no space left on the device writing {path}: it needs {need}; {last_good}")

    def with_last_good(self, last_good: str) -> DiskFullError:
        """The same error, saying what is still good as the caller knows it (a run: its checkpoint)."""
        return DiskFullError(self.path, self.need, last_good)


class NotFoundError(LLModelError):
    """A named thing (run, checkpoint, adapter, task) does not exist; servers answer 404."""


class BusyError(LLModelError):
    """The server is at capacity (queue full, too many requests); servers answer 429 and clients retry."""


def first_line(error: BaseException) -> str:
    """An exception's first message line (its type's name when it has none): what a one-line error quotes."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
