"""A tiny trained run shared by the chain, scoring and Grad-CAM tests."""

from __future__ import annotations

from tfxray.config import load_recipe


def tiny_recipe(**extra):
    overrides = [
        (["data", "input_size"], 48),
        (["train", "epochs"], 2),
        (["train", "batch_size"], 8),
    ]
    overrides += [(key.split("."), value) for key, value in extra.items()]
    return load_recipe("demo", overrides)
