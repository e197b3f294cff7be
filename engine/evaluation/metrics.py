"""Metrics and their standard errors, defined as the tools researchers trust define them.

Accuracy-style metrics are means with the standard error of the mean (sample standard deviation / sqrt(n), as
lm-evaluation-harness reports it); perplexity and bits per byte aggregate summed log-likelihoods over tokens or
bytes; BLEU and chrF come from sacrebleu and ROUGE from rouge-score (their standard errors by bootstrap over
documents, a fixed seed).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

BOOTSTRAP_SAMPLES = 200


@dataclass(frozen=True)
class Score:
    """One metric of one task: value, standard error (None when it has none) and the documents it covers."""

    metric: str
    value: float
    stderr: float | None
    n: int


def mean_stderr(values: Sequence[float]) -> float | None:
    """Standard error of the mean: sample standard deviation (n - 1) over sqrt(n)."""
    n = len(values)
    if n < 2:
        return None
    mu = sum(values) / n
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def mean_score(metric: str, values: Sequence[float]) -> Score:
    return Score(metric, sum(values) / len(values), mean_stderr(values), len(values))


def bootstrap_stderr(
    metric: Callable[[list[int]], float], n: int, samples: int = BOOTSTRAP_SAMPLES, seed: int = 1234
) -> float | None:
    """Standard deviation of ``metric`` over resamples (with replacement) of the ``n`` document indices."""
    if n < 2:
        return None
    rng = random.Random(seed)
    values = [metric([rng.randrange(n) for _ in range(n)]) for _ in range(samples)]
    mu = sum(values) / len(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (len(values) - 1))


# -- language modelling --------------------------------------------------------------------------------------------


def language_modelling(
    logprobs: Sequence[float], tokens: Sequence[int], byte_counts: Sequence[int], correct: int
) -> list[Score]:
    """Cross-entropy (nats/token), perplexity, bits per byte, byte perplexity and token accuracy of documents
    given each one's summed log-likelihood, token count and UTF-8 byte count (lm-evaluation-harness's
    ``bits_per_byte`` = -Σ log p / Σ bytes / ln 2, tokenizer-independent)."""
    n = len(logprobs)
    total_tokens, total_bytes = sum(tokens), sum(byte_counts)
    nll = -sum(logprobs)
    cross_entropy = nll / total_tokens
    per_doc = [-lp / t for lp, t in zip(logprobs, tokens, strict=True) if t]
    return [
        Score("cross_entropy", cross_entropy, mean_stderr(per_doc), n),
        Score("perplexity", math.exp(min(cross_entropy, 700.0)), None, n),
        Score("bits_per_byte", nll / total_bytes / math.log(2), None, n),
        Score("byte_perplexity", math.exp(min(nll / total_bytes, 700.0)), None, n),
        Score("token_accuracy", correct / total_tokens, None, n),
    ]


# -- multiple choice ---------------------------------------------------------------------------------------------


def multiple_choice(
    choice_logprobs: Sequence[Sequence[float]], choices: Sequence[Sequence[str]], gold: Sequence[int]
) -> list[Score]:
    """acc (the choice of highest log-likelihood is the gold one) and acc_norm (the same with log-likelihoods
    divided by each choice's length in characters), as lm-evaluation-harness defines them."""
    acc, acc_norm = [], []
    for lls, texts, answer in zip(choice_logprobs, choices, gold, strict=True):
        acc.append(1.0 if _argmax(lls) == answer else 0.0)
        normalised = [ll / max(len(text), 1) for ll, text in zip(lls, texts, strict=True)]
        acc_norm.append(1.0 if _argmax(normalised) == answer else 0.0)
    return [mean_score("acc", acc), mean_score("acc_norm", acc_norm)]


def _argmax(values: Sequence[float]) -> int:
    return max(range(len(values)), key=lambda i: values[i])


# -- labels --------------------------------------------------------------------------------------------------------


def classification(predicted: Sequence[str], gold: Sequence[str]) -> list[Score]:
    """Accuracy and macro F1 over the labels that occur (in the gold labels or the predictions)."""
    n = len(gold)
    accuracy = [1.0 if p == g else 0.0 for p, g in zip(predicted, gold, strict=True)]
    f1s = []
    for label in sorted(set(gold) | set(predicted)):
        tp = sum(1 for p, g in zip(predicted, gold, strict=True) if p == g == label)
        fp = sum(1 for p, g in zip(predicted, gold, strict=True) if p == label != g)
        fn = sum(1 for p, g in zip(predicted, gold, strict=True) if g == label != p)
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return [mean_score("accuracy", accuracy), Score("f1", sum(f1s) / len(f1s), None, n)]


# -- generation ----------------------------------------------------------------------------------------------------


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> Score:
    """The share of predictions equal to their reference (surrounding whitespace ignored)."""
    return mean_score(
        "exact_match",
        [1.0 if p.strip() == r.strip() else 0.0 for p, r in zip(predictions, references, strict=True)],
    )


_NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def final_number(text: str) -> str | None:
    """GSM8K-style answer extraction: the number after ``####``, else the last number in the text (commas
    removed, a trailing ``.0`` dropped)."""
    marked = text.split("####")[-1] if "####" in text else text
    found = _NUMBER.findall(marked)
    if not found:
        return None
    number = found[-1].replace(",", "").rstrip(".")
    return number[:-2] if number.endswith(".0") else number


def distinct_n(texts: Sequence[str], n: int) -> Score:
    """Distinct n-grams over all generated words ÷ all n-grams (Li et al. 2016): 1 is no repetition at all."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = text.split()
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return Score(f"distinct_{n}", len(set(grams)) / len(grams) if grams else 0.0, None, len(texts))


def bleu_and_chrf(predictions: Sequence[str], references: Sequence[str]) -> list[Score]:
    """Corpus BLEU and chrF from sacrebleu (its default tokenisation), with bootstrap standard errors."""
    import sacrebleu

    def bleu(indices: list[int]) -> float:
        return sacrebleu.corpus_bleu(
            [predictions[i] for i in indices], [[references[i] for i in indices]]
        ).score

    def chrf(indices: list[int]) -> float:
        return sacrebleu.corpus_chrf(
            [predictions[i] for i in indices], [[references[i] for i in indices]]
        ).score

    everything = list(range(len(predictions)))
    n = len(predictions)
    return [
        Score("bleu", bleu(everything), bootstrap_stderr(bleu, n), n),
        Score("chrf", chrf(everything), bootstrap_stderr(chrf, n), n),
    ]


def rouge(predictions: Sequence[str], references: Sequence[str]) -> list[Score]:
    """ROUGE-1/2/L F-measure from rouge-score (stemming off), averaged over documents."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    rows = [scorer.score(r, p) for p, r in zip(predictions, references, strict=True)]
    return [mean_score(name, [row[name].fmeasure for row in rows]) for name in ("rouge1", "rouge2", "rougeL")]
