"""The kinds of job a workspace's engine runs; each job is a run in the catalog."""

from __future__ import annotations

JOB_KINDS = ("tokenizer", "dataset", "pretrain", "finetune", "quickstart", "evaluate", "benchmark", "evolve")
# Runs another job trains in its own process: a study's trials (recorded and followed like any run).
CHILD_KINDS = ("trial",)
# Jobs that train a model: they write checkpoints, draw loss curves, and resume from a checkpoint.
TRAINING_KINDS = ("pretrain", "finetune", "quickstart", "trial")
# Training jobs that `runs resume` requeues (the quickstart's stages are cheap to start over).
RESUMABLE_KINDS = ("pretrain", "finetune")
# Jobs that write their output in one rename at the end: a cancel stops them at once.
INSTANT_CANCEL_KINDS = ("tokenizer", "dataset")
