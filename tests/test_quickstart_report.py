"""What ``llmodel quickstart --chat`` says of its adapter: whether the held-out answer matched, and the scores."""

from __future__ import annotations

import pytest

from llmodel_app.cli.quickstart import _show_chat


def chat_result(reply: str, matched: bool) -> dict:
    return {
        "instruction": "Write the signature of the asyncio.tasks function described here: Wrap a coroutine.",
        "reply": reply,
        "expected": "def ensure_future(coro_or_future, *, loop=None):",
        "matched": matched,
        "adapter": "quickstart-chat",
        "heldout": {
            "task": "stdlib-signatures",
            "adapter": {"exact_match": 0.0392, "bleu": 41.27, "documents": 51},
            "base": {"exact_match": 0.0, "bleu": 3.5, "documents": 51},
        },
    }


def verdict(err: str) -> str:
    (line,) = [line for line in err.splitlines() if "held-out instructions" in line]
    return line


def test_a_wrong_answer_gets_no_check_mark_and_names_the_expected_one(capsys: pytest.CaptureFixture[str]):
    _show_chat(chat_result("def get_name(name, **kwargs):", matched=False))
    line = verdict(capsys.readouterr().err)
    assert "✓" not in line
    assert line.startswith(
        "✗ the answer does not match the expected def ensure_future(coro_or_future, *, loop=None): —"
    )


def test_a_right_answer_is_checked_and_both_models_scores_stand_side_by_side(
    capsys: pytest.CaptureFixture[str],
):
    _show_chat(chat_result("def ensure_future(coro_or_future, *, loop=None):", matched=True))
    captured = capsys.readouterr()
    assert "<|assistant|>\ndef ensure_future(coro_or_future, *, loop=None):" in captured.out
    assert verdict(captured.err) == (
        "✓ the answer matches the expected one — on the 51 held-out instructions (stdlib-signatures) the adapter scores "
        "exact match 3.9% and BLEU 41.3, the base model 0.0% and 3.5"
    )
