"""framegraph's own graph library (`pipelines.resources`): the folder holding ``graphs/`` and ``assets/``.

In a checkout (or an editable install) that is the repository root; a wheel carries both as package data
under ``calculators/_data/``.
"""
from __future__ import annotations

from pathlib import Path


def root() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "_data"
    return packaged if (packaged / "graphs").is_dir() else here.parent
