"""Fine-tuning recipes: supervised data in the chat template, its batches, the trainer's set-up, the job.

Fine-tuning is the pretraining loop (:class:`engine.training.trainer.Trainer`) with a different start (weights
from a checkpoint, or LoRA layers over its frozen, possibly NF4, weights: :mod:`engine.finetune.setup`) and a
different data path (conversations rendered with the one chat template, loss on the assistant's tokens). The
adapter primitives it trains with (LoRA layers, NF4, adapter files) are in :mod:`engine.adapters`.
"""
