"""Adapter primitives: LoRA layers, NF4 base weights, adapter files in PEFT's layout, several adapters served at once.

Below ``engine.runs`` and ``engine.training``: loading, serving and training import these parts; the recipes that
train adapters live in ``engine.finetune``. Importing the package (and ``settings``) needs no torch.
"""
