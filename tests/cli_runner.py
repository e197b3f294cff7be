"""Run ``llmodel`` in-process the way a user would, capturing its exit code and output."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from llmodel_app.cli.entry import main  # the console script's entry, fast paths included


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    capsys.readouterr()
    argv = sys.argv
    sys.argv = ["llmodel", *args]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)
