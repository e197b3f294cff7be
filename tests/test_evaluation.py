"""Evaluation as specified: every metric against an independent computation, the scoring core against a plain
forward pass, tasks from files, code run in a separate process, and lm-evaluation-harness's own numbers."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch

from engine.errors import DataError, LLModelError, NotFoundError
from engine.evaluation import metrics
from engine.evaluation.code_exec import humaneval_program, run_program
from engine.evaluation.requests import ModelScorer, rolling_windows
from engine.evaluation.runner import EvalSettings, run_task, run_tasks
from engine.evaluation.tasks import builtin_tasks, load_task_file, resolve_task
from engine.model import ModelConfig
from engine.tokenizer import Tokenizer
from tests.model_fixtures import context_sensitive_model

SHAPE = {"vocab_size": 512, "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "max_len": 64}


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir) -> Tokenizer:
    return Tokenizer.load(tokenizer_dir)


@pytest.fixture(scope="module")
def scorer(tokenizer) -> ModelScorer:
    return ModelScorer(context_sensitive_model(ModelConfig.from_dict(SHAPE)), tokenizer, batch_size=3)


def plain_logprobs(model, ids: list[int]) -> torch.Tensor:
    """log p(ids[i] | ids[:i]) for i ≥ 1, from one plain forward pass."""
    with torch.no_grad():
        logits = model(torch.tensor([ids[:-1]])).logits[0].float()
    return logits.log_softmax(-1).gather(1, torch.tensor(ids[1:]).unsqueeze(1)).squeeze(1)


# -- metrics against hand computations ---------------------------------------------------------------------------


def test_accuracy_metrics_and_their_standard_errors_follow_lm_eval():
    lls = [[-1.0, -2.0, -0.5], [-3.0, -1.0, -9.0], [-4.0, -4.5, -2.0], [-0.1, -0.2, -0.3]]
    choices = [["a", "bbbb", "cc"], ["x", "y", "z"], ["long answer", "mid one", "s"], ["p", "q", "r"]]
    gold = [2, 1, 0, 0]
    acc, acc_norm = metrics.multiple_choice(lls, choices, gold)
    # acc: argmax(lls) = [2, 1, 2, 0] → right 3 of 4; acc_norm: lls / len(choice) → argmax [2, 1, 0, 0] → 4 of 4.
    assert (acc.value, acc_norm.value, acc.n) == (0.75, 1.0, 4)
    assert acc.stderr == pytest.approx(math.sqrt(0.75 * 0.25 * 4 / 3) / 2)  # sample std (n-1) / sqrt(n)


def test_language_modelling_metrics_aggregate_over_tokens_and_bytes():
    scores = {
        s.metric: s.value for s in metrics.language_modelling([-10.0, -20.0], [5, 10], [20, 40], correct=6)
    }
    assert scores["cross_entropy"] == pytest.approx(30 / 15)
    assert scores["perplexity"] == pytest.approx(math.exp(2.0))
    assert scores["bits_per_byte"] == pytest.approx(30 / 60 / math.log(2))
    assert scores["byte_perplexity"] == pytest.approx(math.exp(0.5))
    assert scores["token_accuracy"] == pytest.approx(6 / 15)


def independent_bleu(hyps: list[str], refs: list[str]) -> float:
    """Corpus BLEU-4 (Papineni et al.) on whitespace tokens: clipped n-gram precisions, brevity penalty."""
    matches, totals, hyp_len, ref_len = [0] * 4, [0] * 4, 0, 0
    for hyp, ref in zip(hyps, refs, strict=True):
        h, r = hyp.split(), ref.split()
        hyp_len, ref_len = hyp_len + len(h), ref_len + len(r)
        for n in range(1, 5):
            hc = Counter(tuple(h[i : i + n]) for i in range(len(h) - n + 1))
            rc = Counter(tuple(r[i : i + n]) for i in range(len(r) - n + 1))
            matches[n - 1] += sum(min(c, rc[g]) for g, c in hc.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals, strict=True)) / 4
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100 * brevity * math.exp(log_precision)


def test_bleu_matches_an_independent_computation_and_rouge_a_hand_count():
    hyps = ["the cat sat on the mat today", "a quick brown fox jumps over the dog"]
    refs = ["the cat sat on the red mat today", "a quick brown fox jumped over the lazy dog"]
    bleu = next(s for s in metrics.bleu_and_chrf(hyps, refs) if s.metric == "bleu")
    assert bleu.value == pytest.approx(independent_bleu(hyps, refs), abs=1e-6)
    assert bleu.stderr is not None and bleu.stderr > 0
    rouge1 = metrics.rouge(["the cat sat"], ["the cat ran away"])[0]
    # 2 shared unigrams: precision 2/3, recall 2/4 → F = 2PR / (P + R).
    assert rouge1.value == pytest.approx(2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2))


def test_exact_match_distinct_n_f1_and_answer_extraction():
    assert metrics.exact_match([" 42 ", "7"], ["42", "8"]).value == 0.5
    assert metrics.distinct_n(["a b a b", "a c"], 2).value == pytest.approx(
        3 / 4
    )  # ab, ba, ab, ac → 3 distinct
    assert metrics.distinct_n(["a b a"], 1).value == pytest.approx(2 / 3)
    accuracy, f1 = metrics.classification(["pos", "neg", "pos", "pos"], ["pos", "neg", "neg", "pos"])
    # pos: tp 2 fp 1 fn 0 → F1 0.8; neg: tp 1 fp 0 fn 1 → 2/3; macro 0.7333.
    assert accuracy.value == 0.75 and f1.value == pytest.approx((0.8 + 2 / 3) / 2)
    assert metrics.final_number("so 3 + 4 = 7.\n#### 1,234") == "1234"
    assert metrics.final_number("The answer is 12.0.") == "12" and metrics.final_number("no digits") is None


# -- the scoring core -------------------------------------------------------------------------------------------


def test_a_continuation_scores_its_tokens_after_the_context_like_a_plain_forward_pass(scorer, tokenizer):
    context, continuation = "def add(a, b):", " return a + b"
    (result,) = scorer.loglikelihood([(context, continuation)])
    whole = tokenizer.encode(context + continuation)
    start = len(tokenizer.encode(context))
    expected = plain_logprobs(scorer.model, whole)[start - 1 :]
    assert result.tokens == len(whole) - start
    assert result.logprob == pytest.approx(float(expected.sum()), abs=1e-4)
    with torch.no_grad():
        logits = scorer.model(torch.tensor([whole[:-1]])).logits[0]
    greedy = all(int(logits[i - 1].argmax()) == whole[i] for i in range(start, len(whole)))
    assert result.greedy == greedy


def test_trailing_spaces_of_the_context_move_to_the_continuation(scorer):
    assert scorer.encode_pair("Answer: ", "yes") == scorer.encode_pair("Answer:", " yes")


def test_rolling_windows_score_every_token_once_with_or_without_overlap():
    ids = list(range(10, 40))
    for stride in (None, 8, 5):
        windows = rolling_windows(ids, prefix_id=2, max_len=12, stride=stride)
        scored = [t for _, continuation in windows for t in continuation]
        assert scored == ids
        assert all(len(c) + len(x) <= 13 for c, x in windows)
    overlapping = rolling_windows(ids, 2, 12, stride=4)
    assert all(len(context) >= 8 for context, _ in overlapping[2:]), (
        "each window brings earlier text as context"
    )


def test_a_short_text_scores_like_one_forward_pass_and_a_long_one_window_by_window(scorer, tokenizer):
    short = "import os\nprint(os.getcwd())\n"
    (result,) = scorer.loglikelihood_rolling([short])
    ids = [scorer.prefix_id, *tokenizer.encode(short)]
    assert result.logprob == pytest.approx(float(plain_logprobs(scorer.model, ids).sum()), abs=1e-4)
    long = "x = 1\n" * 60  # several windows of the 64-token context
    (windowed,) = scorer.loglikelihood_rolling([long], stride=16)
    tokens = tokenizer.encode(long)
    expected = sum(
        float(plain_logprobs(scorer.model, list(context) + list(cont))[-len(cont) :].sum())
        for context, cont in rolling_windows(tokens, scorer.prefix_id, 64, 16)
    )
    assert windowed.tokens == len(tokens) and windowed.logprob == pytest.approx(expected, abs=1e-3)


# -- tasks ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_built_in_tasks_run_offline_and_report_their_chance_level(scorer):
    report = run_task(builtin_tasks()["stdlib-names"], scorer, EvalSettings(limit=8))
    assert [s.metric for s in report.scores] == ["acc", "acc_norm"] and report.scores[0].n == 8
    assert report.baseline == {"acc": 0.25, "acc_norm": 0.25}
    ppl = run_task(builtin_tasks()["stdlib-ppl"], scorer, EvalSettings(limit=2))
    assert {s.metric for s in ppl.scores} >= {"perplexity", "bits_per_byte", "token_accuracy"}
    assert ppl.baseline["perplexity"] == 512


def test_a_custom_task_file_defines_a_multiple_choice_task(tmp_path, scorer):
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"q": f"{a}+1=", "options": [str(a + 1), str(a + 2)], "right": 0}) + "\n"
                            for a in range(6)))  # fmt: skip
    spec = {"name": "plus-one", "kind": "multiple_choice", "data": "q.jsonl", "prompt": "{q}", "choices": "{options}",
            "answer": "right"}  # fmt: skip
    (tmp_path / "plus.json").write_text(json.dumps(spec))
    task = load_task_file(tmp_path / "plus.json")
    report = run_task(task, scorer, EvalSettings())
    assert report.task == "plus-one" and report.scores[0].n == 6 and report.baseline["acc"] == 0.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "quiz", "data": "q.jsonl"}, "'kind' must be perplexity, multiple_choice or generate"),
        ({"kind": "generate", "data": "q.jsonl", "prompt": "{q}"}, "'target' .* is missing"),
        ({"kind": "generate", "data": "q.jsonl", "prmpt": "{q}"}, "unknown key 'prmpt'"),
        (
            {"kind": "generate", "data": "q.jsonl", "prompt": "{q}", "target": "{a}", "metrics": ["blue"]},
            "unknown metric 'blue'",
        ),
    ],
)
def test_a_malformed_task_file_is_one_line(tmp_path, spec, message):
    (tmp_path / "t.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=message):
        load_task_file(tmp_path / "t.json")


def test_a_labelled_generation_task_reports_accuracy_and_macro_f1_as_scikit_learn_computes_them():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    from engine.evaluation.runner import generation_scores

    gold = ["pos", "neg", "neg", "pos", "neutral", "neg"]
    predicted = [
        " pos",
        "neg ",
        "pos",
        "pos",
        "neg",
        "other",
    ]  # surrounding whitespace is not part of a label
    scores = {s.metric: s.value for s in generation_scores(("f1",), predicted, gold, predicted)}
    stripped = [p.strip() for p in predicted]
    assert scores["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(gold, stripped))
    assert scores["f1"] == pytest.approx(
        sklearn_metrics.f1_score(gold, stripped, average="macro", zero_division=0)
    )


def test_unknown_tasks_and_missing_suite_files_say_what_is_expected(scorer):
    with pytest.raises(NotFoundError, match="unknown task 'hellaswg'"):
        resolve_task("hellaswg")
    with pytest.raises(
        DataError, match=r"pass --data-path hellaswag=FILE, a JSONL/JSON/parquet file with ctx"
    ):
        run_task(builtin_tasks()["hellaswag"], scorer, EvalSettings())
    with pytest.raises(DataError, match=r"nowhere\.jsonl not found"):
        run_task(builtin_tasks()["arc_easy"], scorer, EvalSettings(data_paths={"arc_easy": "nowhere.jsonl"}))


def test_standard_suite_layouts_are_read_from_local_files(tmp_path, scorer):
    arc = tmp_path / "arc.jsonl"
    arc.write_text(json.dumps({"question": "Which is a planet?", "choices": {"text": ["Mars", "Moon"], "label": ["A", "B"]},
                               "answerKey": "A"}) + "\n")  # fmt: skip
    hellaswag = tmp_path / "hs.jsonl"
    hellaswag.write_text(json.dumps({"activity_label": "Cooking", "ctx_a": "He boils water.", "ctx_b": "then he",
                                     "endings": ["adds pasta.", "flies away.", "sleeps.", "sings [title] loud."],
                                     "label": "0"}) + "\n")  # fmt: skip
    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "What is 2 plus 2?", "answer": "2 + 2 = 4\n#### 4"}) + "\n")
    paths = {"arc_easy": str(arc), "hellaswag": str(hellaswag), "gsm8k": str(gsm)}
    reports = run_tasks(
        [builtin_tasks()[n] for n in paths], scorer, EvalSettings(data_paths=paths), on_result=lambda r: None
    )
    assert [r.scores[0].n for r in reports] == [1, 1, 1]
    assert reports[2].scores[0].metric == "exact_match"


def test_a_failed_task_keeps_the_results_of_the_tasks_before_it(scorer):
    kept = []
    with pytest.raises(LLModelError, match=r"hellaswag.*the other 1 task"):
        run_tasks([builtin_tasks()["stdlib-names"], builtin_tasks()["hellaswag"]], scorer, EvalSettings(limit=3),
                  on_result=kept.append)  # fmt: skip
    assert [r.task for r in kept] == ["stdlib-names"]


# -- code runs in a separate, limited process --------------------------------------------------------------------

PROBLEM = {
    "task_id": "demo/0",
    "prompt": 'def add(a, b):\n    """Return the sum of a and b."""\n',
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}


class Answers:
    """Stands in for a model: answers each code prompt with a fixed completion."""

    max_len = 512

    def __init__(self, completion: str) -> None:
        self.completion = completion

    def generate_until(self, requests, *, params):
        return [self.completion for _ in requests]


@pytest.mark.slow
def test_canonical_solutions_pass_and_wrong_ones_fail_in_a_separate_process(tmp_path):
    data = tmp_path / "humaneval.jsonl"
    data.write_text(json.dumps(PROBLEM) + "\n")
    settings = EvalSettings(data_paths={"humaneval": str(data)})
    right = run_task(builtin_tasks()["humaneval"], Answers(PROBLEM["canonical_solution"]), settings)
    wrong = run_task(builtin_tasks()["humaneval"], Answers("    return a - b\n"), settings)
    assert (
        right.scores[0].metric == "pass@1" and right.scores[0].value == 1.0 and wrong.scores[0].value == 0.0
    )


@pytest.mark.slow
def test_a_candidate_that_hangs_or_grabs_memory_is_stopped():
    assert run_program("while True:\n    pass\n", timeout=1.0).reason == "timed out"
    greedy = run_program("x = bytearray(4 << 30)\n", timeout=5.0)
    assert not greedy.passed and "MemoryError" in greedy.reason
    assert run_program(humaneval_program(PROBLEM, PROBLEM["canonical_solution"])).passed


# -- the same numbers as lm-evaluation-harness ---------------------------------------------------------------------


@pytest.mark.slow
def test_lm_evaluation_harness_gets_the_same_accuracy_and_perplexity(tmp_path, tokenizer):
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.api.model import TemplateLM
    from lm_eval.tasks import TaskManager
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    model = context_sensitive_model(ModelConfig.from_dict(SHAPE))

    class OurModel(TemplateLM):
        """lm-eval's view of our model: its tokenizer and a plain forward pass, nothing of engine/evaluation."""

        eot_token_id = 3
        prefix_token_id = 2
        max_length = 64

        def tok_encode(self, string, **kwargs):
            return tokenizer.encode(string)

        def _loglikelihood_tokens(self, requests, **kwargs):
            out = []
            for _, context, continuation in requests:
                ids = (context + continuation)[-(self.max_length + 1) :]
                scores = plain_logprobs(model, ids)[-len(continuation) :]
                with torch.no_grad():
                    logits = model(torch.tensor([ids[:-1]])).logits[0][-len(continuation) :]
                out.append(
                    (float(scores.sum()), bool((logits.argmax(-1) == torch.tensor(continuation)).all()))
                )
            return out

        def loglikelihood_rolling(self, requests, **kwargs):
            totals = []
            for (text,) in [r.args for r in requests]:
                windows = [
                    make_disjoint_window(w)
                    for w in get_rolling_token_windows(
                        token_list=self.tok_encode(text),
                        prefix_token=2,
                        max_seq_len=self.max_length,
                        context_len=1,
                    )
                ]
                totals.append(sum(s for s, _ in self._loglikelihood_tokens([(None, *w) for w in windows])))
            return totals

        def generate_until(self, requests, **kwargs):
            raise NotImplementedError

    questions = [{"question": f"What follows {n}?", "choices": [str(n + 1), str(n - 1), "zero"], "label": 0}
                 for n in range(12)]  # fmt: skip
    texts = [{"text": "def f(x):\n    return x * 2\n" * k} for k in (1, 5, 12)]
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    (tmp_path / "ppl.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mc.yaml").write_text(
        f"task: ours_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tmp_path / 'mc.jsonl'}\n"
        'test_split: test\noutput_type: multiple_choice\ndoc_to_text: "{{question}}"\n'
        'doc_to_choice: "{{choices}}"\ndoc_to_target: label\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\n'
    )
    (tmp_path / "tasks" / "ppl.yaml").write_text(
        f"task: ours_ppl\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {tmp_path / 'ppl.jsonl'}\n"
        'test_split: test\noutput_type: loglikelihood_rolling\ndoc_to_text: ""\ndoc_to_target: "{{text}}"\n'
        "metric_list:\n  - metric: bits_per_byte\n  - metric: byte_perplexity\n"
    )
    theirs = lm_eval.simple_evaluate(
        model=OurModel(), tasks=["ours_mc", "ours_ppl"], task_manager=TaskManager(include_path=str(tmp_path / "tasks")),
        bootstrap_iters=10, log_samples=False,
    )["results"]  # fmt: skip

    scorer = ModelScorer(model, tokenizer)
    (tmp_path / "mc_task.json").write_text(json.dumps({"name": "mc", "kind": "multiple_choice", "data": "mc.jsonl",
        "prompt": "{question}", "choices": "{choices}", "answer": "label"}))  # fmt: skip
    (tmp_path / "ppl_task.json").write_text(
        json.dumps({"name": "ppl", "kind": "perplexity", "data": "ppl.jsonl"})
    )
    mc = {
        s.metric: s
        for s in run_task(load_task_file(tmp_path / "mc_task.json"), scorer, EvalSettings()).scores
    }
    ppl = {
        s.metric: s
        for s in run_task(load_task_file(tmp_path / "ppl_task.json"), scorer, EvalSettings()).scores
    }
    assert mc["acc"].value == theirs["ours_mc"]["acc,none"]
    assert mc["acc_norm"].value == theirs["ours_mc"]["acc_norm,none"]
    assert mc["acc"].stderr == pytest.approx(theirs["ours_mc"]["acc_stderr,none"])
    assert ppl["bits_per_byte"].value == pytest.approx(theirs["ours_ppl"]["bits_per_byte,none"], rel=1e-3)
    assert ppl["byte_perplexity"].value == pytest.approx(theirs["ours_ppl"]["byte_perplexity,none"], rel=1e-3)
