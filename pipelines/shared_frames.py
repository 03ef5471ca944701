"""Packets between processes without pickling their pixels: numpy arrays travel through shared memory.

A `SharedWriter` owns one shared-memory block, grown when a message needs more room. `encode(obj)` pickles `obj`
with every numpy array left out (a persistent id stands in its place), copies the arrays into the block, and
returns a `Message`: that small pickle, the block's name and where each array lies in it. On the other side,
`SharedReader.decode` maps the block (once per name) and rebuilds the object, each array copied out into memory
of its own: the receiver may keep what it got (a tracker keeps the last frame) while the block takes the next
message. So an array crosses with two memcpy's and no pickling, whatever its size; a `Frame`, `Tensors` or any
other packet holding arrays needs nothing special.

One message at a time per writer: the protocol using it (a request, then its reply) guarantees the reader is done
with the last one before the next is written. Blocks are named ``<prefix>_<n>_<random>`` so whoever owns a prefix
can find (and unlink) every block made under it, even one made by a process that was killed.
"""
from __future__ import annotations

import io
import os
import pickle
import secrets
import sys
from multiprocessing import shared_memory
from typing import Any, NamedTuple

import numpy as np

ALIGN = 64  # each array starts on a cache line
MIN_BLOCK = 1 << 20


class Message(NamedTuple):
    """What crosses the pipe: the pickle without the arrays, and where the arrays are."""

    meta: bytes
    block: str | None  # the shared-memory block holding the arrays (None: no arrays)
    layout: tuple  # (offset, shape, dtype) of each array, in the order the pickle refers to them


class _Pickler(pickle.Pickler):
    def __init__(self, file, arrays: list):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.arrays = arrays

    def persistent_id(self, obj: Any):
        # Exactly ndarray: a subclass (np.memmap, a masked array) carries more than its buffer.
        if type(obj) is np.ndarray and not obj.dtype.hasobject:
            self.arrays.append(obj)
            return len(self.arrays) - 1
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, arrays: list):
        super().__init__(file)
        self.arrays = arrays

    def persistent_load(self, pid: Any):
        return self.arrays[pid]


class SharedWriter:
    """The sending end of one direction of a channel: owns its block, which it unlinks on `close`."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.block: shared_memory.SharedMemory | None = None
        self._made = 0

    @property
    def block_name(self) -> str | None:
        return self.block.name if self.block is not None else None

    def encode(self, obj: Any) -> Message:
        arrays: list[np.ndarray] = []
        out = io.BytesIO()
        _Pickler(out, arrays).dump(obj)
        if not arrays:
            return Message(out.getvalue(), None, ())
        layout = []
        end = 0
        for a in arrays:
            layout.append((end, a.shape, a.dtype))
            end += -(-a.nbytes // ALIGN) * ALIGN
        buf = self._room(end).buf
        for a, (offset, shape, dtype) in zip(arrays, layout):
            if a.nbytes:
                np.copyto(np.ndarray(shape, dtype, buf, offset), a, casting="no")
        return Message(out.getvalue(), self.block.name, tuple(layout))

    def _room(self, size: int) -> shared_memory.SharedMemory:
        block = self.block
        if block is not None and block.size >= size:
            return block
        self._made += 1
        name = f"{self.prefix}_{self._made}_{secrets.token_hex(3)}"
        # Half again what this message needs: frames of one stream are all the same size, so one growth
        # usually suffices, and a slightly bigger one later does not force another.
        self.block = shared_memory.SharedMemory(name=name, create=True, size=max(MIN_BLOCK, size + size // 2))
        if block is not None:
            _unlink(block)  # the reader is done with it (one message at a time); it drops its mapping on the next
        return self.block

    def close(self) -> None:
        if self.block is not None:
            _unlink(self.block)
            self.block = None


class SharedReader:
    """The receiving end: maps the writer's current block, and copies each array out of it."""

    def __init__(self):
        self.block: shared_memory.SharedMemory | None = None

    @property
    def block_name(self) -> str | None:
        return self.block.name if self.block is not None else None

    def decode(self, message: Message) -> Any:
        arrays = []
        if message.layout:
            if self.block is None or self.block.name != message.block:
                self.close()
                self.block = shared_memory.SharedMemory(name=message.block)
            buf = self.block.buf
            for offset, shape, dtype in message.layout:
                arrays.append(np.ndarray(shape, dtype, buf, offset).copy())
        return _Unpickler(io.BytesIO(message.meta), arrays).load()

    def close(self) -> None:
        if self.block is not None:
            self.block.close()
            self.block = None


def _unlink(block: shared_memory.SharedMemory) -> None:
    block.close()
    try:
        block.unlink()
    except FileNotFoundError:
        pass  # someone cleaning up after a dead process got there first


def unlink_blocks(prefix: str) -> list[str]:
    """Unlink every block whose name starts with `prefix` (Linux, where blocks are files in /dev/shm; elsewhere
    nothing): blocks of a process that was killed before it could unlink its own. Returns their names."""
    if not sys.platform.startswith("linux") or not os.path.isdir("/dev/shm"):
        return []
    found = [name for name in os.listdir("/dev/shm") if name.startswith(prefix)]
    for name in found:
        try:
            # Attached then unlinked, so the resource tracker forgets it too (it would warn at exit otherwise).
            _unlink(shared_memory.SharedMemory(name=name))
        except FileNotFoundError:
            pass
        except (OSError, ValueError):  # e.g. empty: its creator was killed before it could size it
            try:
                os.unlink(os.path.join("/dev/shm", name))
            except OSError:
                pass
    return found
