"""Where a batch's outputs and its manifest go: a local folder, or an fsspec URL (``s3://bucket/out``,
``gs://``, ``file:///srv/out``, ``memory://out`` in tests).

Either way a file appears under its final name only when it is complete. In a local folder it is written
under a temporary name beside its final one and renamed (atomic on one filesystem). For a URL, the graph writes
into a local staging folder of the process that runs it; the finished file is uploaded under a temporary name
and moved into place (an object store's upload is itself all-or-nothing). ``memory://`` lives in one process,
so workers send such files back to the driver, which stores them.

Names given to a store are relative POSIX paths (``a/clip.mp4``); the store knows its root.
"""
from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

from .errors import GraphConfigError, OutputWriteError

MANIFEST_NAME = "manifest.jsonl"
_TEMP_MARK = ".partial-"
#: fsspec filesystems that live inside one process: workers cannot write there themselves.
PROCESS_LOCAL = {"memory"}
INSTALL_HINT = 'an output URL needs fsspec: pip install "framegraph[remote]" (plus s3fs, gcsfs... for the cloud)'


def open_store(where: str | os.PathLike) -> "LocalStore | FsspecStore":
    """A folder path gives a `LocalStore`; ``PROTOCOL://...`` an `FsspecStore`."""
    text = os.fspath(where)
    if "://" in text:
        return FsspecStore(text)
    return LocalStore(Path(text))


def temp_name(final: str, token: str) -> str:
    """Where `final` is written until it is complete: the same folder (a rename is atomic there), a hidden name
    with the same suffix (writers pick the format from it): ``a/.clip.partial-3f2a.mp4``."""
    folder, _, base = final.rpartition("/")
    stem, dot, suffix = base.rpartition(".") if "." in base else (base, "", "")
    hidden = f".{stem}{_TEMP_MARK}{token}{dot}{suffix}"
    return f"{folder}/{hidden}" if folder else hidden


def _temp_pattern(final: str) -> str:
    folder, _, base = final.rpartition("/")
    stem, dot, suffix = base.rpartition(".") if "." in base else (base, "", "")
    pattern = f".{glob.escape(stem)}{_TEMP_MARK}*{glob.escape(dot + suffix)}"
    return f"{glob.escape(folder)}/{pattern}" if folder else pattern


class LocalStore:
    """A folder on this machine (or on a filesystem every worker mounts at the same path)."""

    shared = True  # any process can write here itself

    def __init__(self, root: Path):
        self.root = root.expanduser().resolve()

    def __str__(self) -> str:
        return str(self.root)

    def show(self, name: str) -> str:
        return str(self.root / name)

    def local_root(self) -> Path | None:
        return self.root

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def read_text(self, name: str) -> str:
        path = self.root / name
        return path.read_text(errors="replace") if path.exists() else ""

    def append_line(self, name: str, line: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as f:
            cut_short = f.tell() > 0 and (f.seek(f.tell() - 1), f.read(1))[1] != b"\n"
            f.write((b"\n" if cut_short else b"") + line + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def stage(self, name: str, token: str) -> Path:
        """The path the graph writes `name` to."""
        path = self.root / temp_name(name, token)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self, staged: Path, name: str, token: str) -> None:
        os.replace(staged, self.root / name)

    def store_bytes(self, data: bytes, name: str, token: str) -> None:
        staged = self.stage(name, token)
        staged.write_bytes(data)
        self.commit(staged, name, token)

    def remove_temps(self, name: str) -> None:
        """Delete what killed attempts left under temporary names for `name`."""
        for stale in self.root.glob(_temp_pattern(name)):
            stale.unlink(missing_ok=True)

    def discard(self) -> None:
        """Nothing to clean up: staged files live in the output folder and are renamed or removed one by one."""


class FsspecStore:
    """A folder behind an fsspec URL. Picklable (the URL travels; each process opens the filesystem itself)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.protocol = self.url.partition("://")[0].lower()
        self._fs = None
        self._staging: Path | None = None

    def __getstate__(self):
        return {"url": self.url, "protocol": self.protocol, "_fs": None, "_staging": None}

    @property
    def shared(self) -> bool:
        return self.protocol not in PROCESS_LOCAL

    def __str__(self) -> str:
        return self.url

    def show(self, name: str) -> str:
        return f"{self.url}/{name}"

    def local_root(self) -> Path | None:
        return Path(self._path("")) if self.protocol in ("file", "local") else None

    @property
    def fs(self):
        if self._fs is None:
            try:
                import fsspec
            except ImportError as exc:
                raise GraphConfigError(f"--output-dir {self.url}: {INSTALL_HINT}") from exc
            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise GraphConfigError(f"--output-dir {self.url}: {exc}") from exc
        return self._fs

    def _path(self, name: str) -> str:
        self.fs  # noqa: B018 -- sets _root
        return f"{self._root.rstrip('/')}/{name}" if name else self._root

    def exists(self, name: str) -> bool:
        return self.fs.isfile(self._path(name))

    def read_text(self, name: str) -> str:
        path = self._path(name)
        if not self.fs.exists(path):
            return ""
        return self.fs.cat_file(path).decode(errors="replace")

    def append_line(self, name: str, line: bytes) -> None:
        # Object stores cannot append: the whole (small) manifest is rewritten and moved into place.
        old = self.read_text(name).encode()
        if old and not old.endswith(b"\n"):
            old += b"\n"
        self.store_bytes(old + line + b"\n", name, "manifest")

    def stage(self, name: str, token: str) -> Path:
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="framegraph-staging-"))
        path = self._staging / token / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def commit(self, staged: Path, name: str, token: str) -> None:
        final, temp = self._path(name), self._path(temp_name(name, token))
        try:
            self.fs.makedirs(final.rpartition("/")[0] or self._path(""), exist_ok=True)
            self.fs.put_file(str(staged), temp)
            self._move(temp, final)
        except OSError as exc:
            raise OutputWriteError(f"cannot write {self.show(name)}: {exc.strerror or exc}") from exc
        finally:
            staged.unlink(missing_ok=True)

    def store_bytes(self, data: bytes, name: str, token: str) -> None:
        final, temp = self._path(name), self._path(temp_name(name, token))
        try:
            self.fs.makedirs(final.rpartition("/")[0] or self._path(""), exist_ok=True)
            self.fs.pipe_file(temp, data)
            self._move(temp, final)
        except OSError as exc:
            raise OutputWriteError(f"cannot write {self.show(name)}: {exc.strerror or exc}") from exc

    def _move(self, temp: str, final: str) -> None:
        # One file, no glob expansion (names may hold '[' or '*'): a rename where the filesystem has one, else
        # a server-side copy and a delete.
        if self.protocol in ("file", "local"):
            os.replace(temp, final)
        else:
            self.fs.cp_file(temp, final)
            self.fs.rm_file(temp)

    def remove_temps(self, name: str) -> None:
        self.fs  # noqa: B018 -- sets _root
        for stale in self.fs.glob(f"{glob.escape(self._root.rstrip('/'))}/{_temp_pattern(name)}"):
            self.fs.rm_file(stale)

    def discard(self) -> None:
        """Remove this process's staging folder (what a failed or finished run left there)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
