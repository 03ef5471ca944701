"""Converted models, made once and kept: keyed by the source model's content hash and the engine's version.

Engines that cannot load ONNX or TFLite as they are (ncnn, MNN, TVM, TensorRT, TorchScript) convert at first
use, here, and load the cached result afterwards. The cache lives in $FRAMEGRAPH_CACHE (default
~/.cache/framegraph/engines/<engine>/<engine version>-fg<framegraph version>/<model sha256[:16]>/); a conversion is written to a temporary
folder and renamed into place, so a crash never leaves a half-written entry, and two processes converting
the same model at once both end with a complete one.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("framegraph.engines")


def cache_root() -> Path:
    return Path(os.environ.get("FRAMEGRAPH_CACHE") or Path.home() / ".cache" / "framegraph") / "engines"


def _framegraph_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("framegraph")
    except metadata.PackageNotFoundError:
        return "dev"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_conversion(model: Path, engine: str, engine_version: str, variant: str,
                      convert: Callable[[Path, Path], None]) -> Path:
    """The folder holding `model` converted for `engine` (`variant` separates options that change the result,
    e.g. "fp16"). `convert(model, out_dir)` writes the converted files into `out_dir` when not cached yet."""
    key = file_sha256(model)[:16] + (f"-{variant}" if variant else "")
    # framegraph's own version too: its conversion code (graph rewrites, sidecar files) changes with it.
    target = cache_root() / engine / f"{engine_version or 'unknown'}-fg{_framegraph_version()}" / key
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting %s for %s %s (first use; cached in %s)", model.name, engine, engine_version, target)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=target.parent))
    try:
        convert(model, work)
        (work / ".complete").write_text(f"{model}\n")
        try:
            work.rename(target)
        except OSError:  # another process finished first: its entry is as good as ours
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("converted %s for %s in %.1f s", model.name, engine, time.perf_counter() - start)
    return target
