"""The prompts the app sends to the model, one text file each beside this module, read once at import."""

from __future__ import annotations

from importlib import resources


def read_prompt(name: str) -> str:
    """The text of prompts/<name>, without surrounding blank lines."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8").strip()
