"""Batch runs, step 1: what to run. The input files of a folder or glob, the outputs each one gets, and the
manifest that makes a rerun skip what is done.

    items = plan_batch(expand_source("videos/"), {"output": "{stem}.mp4", "detections": "{stem}.jsonl"})
    manifest = Manifest(open_store("out"))
    todo = [item for item in items if not manifest.is_done(item, fingerprint)]

Outputs are named from the input, relative to the output folder, keeping its sub-folders: ``videos/a/clip.mov``
gives ``a/clip.mp4`` and ``a/clip.jsonl``. The store (pipelines/batch_store.py: a folder or an fsspec URL) puts
a file under its final name only when it is complete; the manifest (one JSON line per attempt, the last one per
input wins) records what each input produced.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .batch_store import MANIFEST_NAME
from .errors import GraphConfigError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".wmv", ".flv",
                  ".3gp")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: The output of each flag a graph's ``cli:`` may map, named from the input's stem.
DEFAULT_NAMES = {"output": "{stem}.mp4", "detections": "{stem}.jsonl", "landmarks": "{stem}_landmarks.jsonl"}


@dataclass(frozen=True)
class SourceFiles:
    """The files a ``--source`` folder or glob stands for, and the folder their sub-folders are relative to."""

    root: Path
    files: tuple[Path, ...]


@dataclass(frozen=True)
class BatchItem:
    """One input file and the final name of each output flag in the output folder (``{"output": "a/clip.mp4"}``)."""

    source: Path
    name: str  # the input relative to the source root, POSIX style: its key in the manifest
    outputs: dict[str, str] = field(hash=False)
    size: int = 0
    mtime_ns: int = 0

    @property
    def is_image(self) -> bool:
        return self.source.suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class ManifestRecord:
    """One finished attempt at one input. `status` is ``done`` or ``failed``; `outputs` are relative to the
    output folder and exist under those names (a damaged input that decoded in part is ``failed`` with
    outputs)."""

    input: str
    size: int
    mtime_ns: int
    outputs: list[str]
    frames: int
    seconds: float
    status: str
    error: str = ""
    attempts: int = 1
    fingerprint: str = ""


def is_media(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES


def expand_source(source: str, exclude: Path | None = None) -> SourceFiles:
    """A folder (its videos and images, sub-folders included), a glob (every file it matches) or one file.
    Hidden files and anything under `exclude` (the output folder) are left out. Raises GraphConfigError when
    nothing matches."""
    path = Path(source).expanduser()
    if path.is_file():
        return SourceFiles(path.parent.resolve(), (path.resolve(),))
    if path.is_dir():
        root = path.resolve()
        found = [p for p in root.rglob("*") if p.is_file() and is_media(p)]
    elif glob.has_magic(source):
        root = _glob_root(source).resolve()
        found = [Path(p).resolve() for p in glob.glob(os.path.expanduser(source), recursive=True)
                 if os.path.isfile(p)]
    else:
        raise GraphConfigError(f"--source {source}: no such file or folder, and not a glob")
    excluded = exclude.resolve() if exclude is not None else None
    files = sorted(p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts)
                   and not (excluded is not None and p.is_relative_to(excluded)))
    if not files:
        what = "videos or images" if path.is_dir() else "files"
        raise GraphConfigError(f"--source {source}: no {what} found there")
    return SourceFiles(root, tuple(files))


def _glob_root(pattern: str) -> Path:
    parts = Path(os.path.expanduser(pattern)).parts
    fixed = [p for p in parts[:next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
    return Path(*fixed) if fixed else Path(".")


def plan_batch(source: SourceFiles, names: dict[str, str]) -> list[BatchItem]:
    """Each input with its outputs' names, by the templates in `names` (``{"output": "{stem}.mp4"}``,
    ``{stem}`` the input's name without its suffix). An image input's ``output`` keeps the image's suffix. Two
    inputs that would share a name (``a.mov`` and ``a.mp4``) get ``a_2...`` for the second."""
    used: set[str] = set()
    items = []
    for path in source.files:
        rel = path.relative_to(source.root)
        outputs = _unique_outputs(path, rel, names, used)
        stat = path.stat()
        items.append(BatchItem(path, rel.as_posix(), outputs, stat.st_size, stat.st_mtime_ns))
    return items


def item_for(path: Path, name: str, outputs: dict[str, str]) -> BatchItem:
    """A `BatchItem` with outputs chosen by the caller (an app's own naming), relative to the output folder."""
    stat = path.stat()
    return BatchItem(path, name, outputs, stat.st_size, stat.st_mtime_ns)


def _unique_outputs(path: Path, rel: Path, names: dict[str, str], used: set[str]) -> dict[str, str]:
    n = 1
    while True:
        stem = path.stem if n == 1 else f"{path.stem}_{n}"
        outputs = {}
        for flag, template in names.items():
            name = template.format(stem=stem)
            if flag == "output" and path.suffix.lower() in IMAGE_SUFFIXES:
                name = str(Path(name).with_suffix(path.suffix.lower()))
            outputs[flag] = (rel.parent / name).as_posix()
        if not used.intersection(outputs.values()):
            used.update(outputs.values())
            return outputs
        n += 1


def check_template(flag: str, template: str) -> str:
    if "{stem}" not in template or Path(template).is_absolute():
        raise GraphConfigError(f"--{flag} {template}: with --output-dir, expected a name made from the input's, "
                               f"relative to the output folder, such as '{DEFAULT_NAMES.get(flag, '{stem}.out')}'")
    return template


def fingerprint(*parts: object) -> str:
    """What the outputs depend on besides the input (graph text, overrides): a change redoes every file."""
    return hashlib.sha1(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


class Manifest:
    """``OUT/manifest.jsonl``: one line per finished attempt, appended and flushed at once; the last line of an
    input wins. A line cut short by a killed run is ignored (and the next one starts on a line of its own)."""

    def __init__(self, store):
        self.store = store
        self.records: dict[str, ManifestRecord] = {}
        for line in store.read_text(MANIFEST_NAME).splitlines():
            try:
                record = ManifestRecord(**json.loads(line))
            except (ValueError, TypeError):
                continue
            self.records[record.input] = record

    def is_done(self, item: BatchItem, print_: str) -> bool:
        """Done in an earlier run: the same input (size, modification time), the same settings, and its outputs
        still there."""
        r = self.records.get(item.name)
        return (r is not None and r.status == "done" and r.size == item.size and r.mtime_ns == item.mtime_ns
                and r.fingerprint == print_ and all(self.store.exists(o) for o in r.outputs))

    def append(self, record: ManifestRecord) -> None:
        self.store.append_line(MANIFEST_NAME, json.dumps(asdict(record)).encode())
        self.records[record.input] = record
