"""Fine-tuning: supervised data in the chat template, LoRA and QLoRA adapters, and their files.

Fine-tuning is the pretraining loop (:class:`engine.training.trainer.Trainer`) with a different start (weights
from a checkpoint, optionally wrapped in LoRA layers over a frozen, possibly NF4, base) and a different data path
(conversations rendered with the one chat template, loss on the assistant's tokens).
"""
