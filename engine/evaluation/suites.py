"""The tasks LLModel knows by name: built locally from the standard library, and the standard suites read from
local files in their published layouts (nothing is downloaded)."""

from __future__ import annotations

import csv
import json
import random
import re
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import DataError
from engine.evaluation.metrics import final_number

if TYPE_CHECKING:
    from engine.evaluation.tasks import Doc, Task

STDLIB_HELDOUT_FRACTION = 0.005  # held out of every dataset prepared with val_fraction ≥ this (seed 1337)
CODE_STOPS = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"]


# -- reading local files --------------------------------------------------------------------------------------------


def read_records(path: Path, what: str) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL, JSON (array), CSV or parquet file; a missing or malformed file is one line."""
    if not path.is_file():
        raise DataError(f"{what}: {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(
                f"{what}: reading parquet needs pyarrow (`pip install -e '.[datasets]'`)"
            ) from None
        yield from pq.read_table(path).to_pylist()
        return
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            yield from ({"row": row} for row in csv.reader(fh))
        return
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".json" and text.lstrip().startswith("["):
        try:
            yield from json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: malformed JSON ({error.msg}, line {error.lineno})") from None
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"{path}:{lineno}: malformed JSON ({error.msg})") from None


def _needs(task: str, layout: str) -> Callable[[Path | None], Iterator[Doc]]:
    """A loader that reads --data-path, or says which file and layout the task expects."""

    def load(path: Path | None) -> Iterator[dict[str, Any]]:
        if path is None:
            raise DataError(
                f"task {task} reads a local file (nothing is downloaded): pass --data-path {task}=FILE, {layout}"
            )
        return read_records(path, f"task {task}")

    return load


# -- built from the standard library ------------------------------------------------------------------------------


@cache
def _instruction_split() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    from engine.data.stdlib_corpus import stdlib_instruction_split

    return stdlib_instruction_split()


def _heldout_corpus(_: Path | None) -> Iterator[dict[str, Any]]:
    import numpy as np

    from engine.data.split import SPLIT_SEED, choose_validation, document_hash
    from engine.data.stdlib_corpus import iter_stdlib_sources

    sources = [(relative, text) for relative, text in iter_stdlib_sources() if text.strip()]
    hashes = np.array([document_hash(text, SPLIT_SEED) for _, text in sources], dtype=np.uint64)
    for (relative, text), held_out in zip(
        sources, choose_validation(hashes, STDLIB_HELDOUT_FRACTION), strict=True
    ):
        if held_out:
            yield {"text": text, "source": relative}


def _name_choices(_: Path | None) -> Iterator[dict[str, Any]]:
    from engine.evaluation.tasks import distractors

    train, heldout = _instruction_split()
    names = sorted({r["name"] for r in train + heldout})
    for record in heldout:
        options = [record["name"], *distractors(names, record["name"], 3, record["summary"])]
        order = list(range(len(options)))
        random.Random(record["summary"]).shuffle(order)  # the same order every time, whatever the process
        yield {**record, "options": [options[i] for i in order], "gold": order.index(0)}


def _signatures(_: Path | None) -> Iterator[dict[str, Any]]:
    yield from _instruction_split()[1]


def stdlib_tasks() -> list[Task]:
    from engine.evaluation.tasks import Task
    from engine.tokenizer import ROLE_MARKERS, render_chat

    return [
        Task(
            "stdlib-ppl",
            "perplexity",
            "held-out standard-library source files: cross-entropy, perplexity, bits per byte, token accuracy",
            _heldout_corpus,
            chance="uniform over the vocabulary: perplexity = vocab size",
            default_limit=8,
        ),
        Task(
            "stdlib-names",
            "multiple_choice",
            "which of four function names fits a held-out docstring (embedded instruction set)",
            _name_choices,
            prompt=lambda d: f"Docstring: {d['summary']}\nFunction name:",
            choices=lambda d: list(d["options"]),
            gold=lambda d: int(d["gold"]),
            chance="acc 0.25",
        ),
        Task(
            "stdlib-signatures",
            "generate",
            "docstring → function signature on the held-out instruction set (chat template)",
            _signatures,
            prompt=lambda d: render_chat([{"role": "user", "content": d["instruction"]}]),
            reference=lambda d: d["output"],
            until=[*ROLE_MARKERS.values(), "\n"],
            max_tokens=48,
            metrics=("exact_match", "bleu", "chrf", "rouge", "distinct"),
            chance="a constant answer (the most common training signature)",
        ),
    ]


def most_common_signature() -> str:
    """The training split's most frequent signature: the constant-answer baseline of stdlib-signatures."""
    from collections import Counter

    return Counter(r["output"] for r in _instruction_split()[0]).most_common(1)[0][0]


# -- standard suites from local files -----------------------------------------------------------------------------


def _hellaswag_text(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _hellaswag_context(doc: Doc) -> str:
    ctx = doc.get("ctx") or (doc["ctx_a"] + " " + doc["ctx_b"].capitalize())
    if "ctx_a" in doc and "ctx_b" in doc:
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return _hellaswag_text(f"{doc.get('activity_label', '')}: {ctx}")


def _arc_question(doc: Doc) -> tuple[str, list[str], list[str]]:
    """(question, choice texts, choice labels) in the Hugging Face layout or AI2's original one."""
    question = doc["question"]
    if isinstance(question, dict):  # AI2's JSONL: {"question": {"stem", "choices": [{"text", "label"}]}}
        choices = question["choices"]
        return question["stem"], [c["text"] for c in choices], [c["label"] for c in choices]
    choices = doc["choices"]
    return question, list(choices["text"]), list(choices["label"])


def _arc_task(name: str, description: str, layout: str) -> Task:
    from engine.evaluation.tasks import Task

    return Task(
        name,
        "multiple_choice",
        description,
        _needs(name, layout),
        prompt=lambda d: f"Question: {_arc_question(d)[0]}\nAnswer:",
        choices=lambda d: _arc_question(d)[1],
        gold=lambda d: _arc_question(d)[2].index(d["answerKey"]),
        needs_data=True,
        data_layout=layout,
        chance="acc 1 / the number of choices (about 0.25)",
    )


def _mmlu(doc: Doc) -> Doc:
    """The Hugging Face layout (question, subject, choices, answer) from either it or the original CSV rows."""
    if "row" in doc:
        question, a, b, c, d, answer = doc["row"][:6]
        return {
            "question": question,
            "choices": [a, b, c, d],
            "answer": "ABCD".index(answer.strip()),
            "subject": "",
        }
    answer = doc["answer"]
    return {**doc, "answer": "ABCD".index(answer) if isinstance(answer, str) else int(answer)}


def _mmlu_prompt(doc: Doc) -> str:
    doc = _mmlu(doc)
    subject = str(doc.get("subject") or "").replace("_", " ")
    header = (
        f"The following are multiple choice questions (with answers) about {subject}.\n\n" if subject else ""
    )
    lines = "".join(f"{letter}. {choice}\n" for letter, choice in zip("ABCD", doc["choices"], strict=False))
    return f"{header}{doc['question'].strip()}\n{lines}Answer:"


TRUTHFULQA_PRIMER = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)


def standard_tasks() -> list[Task]:
    from engine.evaluation.tasks import Task

    hellaswag_layout = (
        "a JSONL/JSON/parquet file with ctx (or ctx_a, ctx_b), activity_label, endings and label per row"
    )
    arc_layout = (
        "a JSONL/parquet file with question, choices {text, label} and answerKey (or AI2's original JSONL)"
    )
    mmlu_layout = "a JSONL/parquet file with question, subject, choices and answer, or an original MMLU CSV"
    tqa_layout = "a JSONL/parquet file with question and mc1_targets / mc2_targets {choices, labels}"
    gsm_layout = "a JSONL/parquet file with question and answer ('... #### 42')"
    code_layout = "a JSONL file with task_id, prompt, canonical_solution, test and entry_point (HumanEval)"
    return [
        Task(
            "hellaswag",
            "multiple_choice",
            "commonsense sentence completion (HellaSwag), acc and acc_norm",
            _needs("hellaswag", hellaswag_layout),
            prompt=_hellaswag_context,
            choices=lambda d: [_hellaswag_text(e) for e in d["endings"]],
            gold=lambda d: int(d["label"]),
            needs_data=True,
            data_layout=hellaswag_layout,
            chance="acc 0.25",
        ),
        _arc_task("arc_easy", "grade-school science questions, easy set (ARC)", arc_layout),
        _arc_task("arc_challenge", "grade-school science questions, challenge set (ARC)", arc_layout),
        Task(
            "mmlu",
            "multiple_choice",
            "multitask knowledge questions with four lettered choices (MMLU)",
            _needs("mmlu", mmlu_layout),
            prompt=_mmlu_prompt,
            choices=lambda d: ["A", "B", "C", "D"],
            gold=lambda d: _mmlu(d)["answer"],
            needs_data=True,
            data_layout=mmlu_layout,
            chance="acc 0.25",
        ),
        Task(
            "truthfulqa_mc1",
            "multiple_choice",
            "TruthfulQA, one true answer among the choices (MC1)",
            _needs("truthfulqa_mc1", tqa_layout),
            prompt=lambda d: f"{TRUTHFULQA_PRIMER}\n\nQ: {d['question']}\nA:",
            choices=lambda d: list(d["mc1_targets"]["choices"]),
            gold=lambda d: 0,
            needs_data=True,
            data_layout=tqa_layout,
            chance="acc 1 / the number of choices",
        ),
        Task(
            "truthfulqa_mc2",
            "multiple_choice",
            "TruthfulQA, the normalised probability mass on the true answers (MC2)",
            _needs("truthfulqa_mc2", tqa_layout),
            prompt=lambda d: f"{TRUTHFULQA_PRIMER}\n\nQ: {d['question']}\nA:",
            choices=lambda d: list(d["mc2_targets"]["choices"]),
            gold=lambda d: 0,
            labels=lambda d: [int(x) for x in d["mc2_targets"]["labels"]],
            metrics=("mc2",),
            needs_data=True,
            data_layout=tqa_layout,
            chance="mc2 about the share of true answers",
        ),
        Task(
            "gsm8k",
            "generate",
            "grade-school math word problems, exact match of the final number (GSM8K)",
            _needs("gsm8k", gsm_layout),
            prompt=lambda d: f"Question: {d['question']}\nAnswer:",
            reference=lambda d: final_number(d["answer"]) or "",
            until=["Question:", "</s>", "\n\n"],
            max_tokens=256,
            extract=final_number,
            metrics=("exact_match",),
            needs_data=True,
            data_layout=gsm_layout,
            chance="exact match about 0",
        ),
        Task(
            "humaneval",
            "code",
            "write a Python function from its docstring; pass@1 by running its tests (HumanEval)",
            _needs("humaneval", code_layout),
            prompt=lambda d: d["prompt"],
            until=CODE_STOPS,
            max_tokens=256,
            needs_data=True,
            data_layout=code_layout,
            chance="pass@1 0",
        ),
    ]
