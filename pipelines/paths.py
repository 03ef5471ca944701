"""Option types for paths, and the one rule that resolves them.

A calculator declares what a path option is by its type, and the validator resolves it before the run:

- `InputFile`: a file the node reads (a model, an image). Relative paths are looked up against the folder of
  the file that wrote the value (the graph or subgraph file; the working directory for command-line values),
  then in the installed graph libraries (`pipelines.resources`). Never the working directory by accident. A
  file found nowhere is a validation error listing where it was looked for.
- `OutputFile`: a file the node writes. Relative paths are relative to the working directory (where a run
  writes its results, as with any command-line tool); a folder that cannot be created is a validation error.
- `MediaSource`: what a capture node opens: a camera index (``0``), a URL (``rtsp://...``), a file, a folder
  or a glob. Paths resolve like `InputFile`, but one found nowhere is left for the source to report.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from . import resources


class InputFile(str):
    """An option type: a file the node reads, resolved against the graph's folder, then the graph libraries."""


class OutputFile(str):
    """An option type: a file the node writes, relative to the working directory; its folder must be creatable."""


class MediaSource(str):
    """An option type: a camera index, URL, file, folder or glob; paths resolve like `InputFile`'s."""


PATH_TYPES = (InputFile, OutputFile, MediaSource)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def resolve(kind: type, value: str | os.PathLike, base_dir: Path | None) -> str:
    """The value of a path option of type `kind`, resolved; raises ValueError saying what is wrong."""
    text = os.fspath(value)
    if kind is OutputFile:
        return _output(text)
    if kind is MediaSource and (text.strip().isdigit() or _URL.match(text)):
        return text
    path = Path(text).expanduser()
    if path.is_absolute():
        if kind is InputFile:
            _check_readable(path)
        return str(path)
    dirs = resources.search_dirs(base_dir)
    for folder in dirs:
        candidate = folder / path
        if candidate.exists() or (kind is MediaSource and glob.has_magic(text) and glob.glob(str(candidate))):
            if kind is InputFile:
                _check_readable(candidate)
            return str(candidate)
    if kind is MediaSource:
        return str(dirs[0] / path)  # the source says it is missing, with the path it tried
    raise ValueError(f"file {text} not found; looked in {', '.join(str(d) for d in dirs)}")


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise ValueError(f"file {path} not found")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a file")
    if not os.access(path, os.R_OK):
        raise ValueError(f"file {path} is not readable")


def _output(text: str) -> str:
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if path.is_dir():
        raise ValueError(f"output {path} is a folder; name a file")
    folder = path.parent
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot create folder {folder} for output {path.name}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot create {path}: folder {existing} is not writable")
    return str(path)


def ensure_parent(path: str | os.PathLike) -> None:
    """Create an output file's folder (sinks call this at open)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
