"""Batch runs, step 2: one input file through the graph, in whatever process runs it (a local worker, a Ray task).

The graph's ``cli:`` flags ``source``, ``output`` and ``detections`` are set for the file; every output is written
where the job's store stages it (a temporary name beside its final one, or a local staging folder for a URL) and
put under its final name only when the graph finished without an error.
An image input's ``output`` is written as an image (the last frame the output node receives) when the job asks.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .batch import BatchItem
from .batch_store import LocalStore
from .overrides import Override, thread_shares

log = logging.getLogger("framegraph.batch")


@dataclass(frozen=True)
class JobSpec:
    """What every file of a batch runs: the graph file, overrides (``--set``, an app's settings), flags the
    graph's ``cli:`` maps (``("max_frames", 10)``), and a fingerprint of all that for
    the manifest. Picklable: it travels to worker processes and Ray tasks."""

    graph: str
    overrides: tuple[Override, ...] = ()
    flags: tuple[tuple[str, Any], ...] = ()
    stills: bool = True  # an image input's `output` is an image of the same format, not a one-frame video
    fingerprint: str = ""
    log_level: int = logging.WARNING
    store: Any = None  # where outputs go (pipelines/batch_store.py); None: the working directory
    threads: int = 0  # > 0: nodes that name no executor share this many threads (run-graph --threads)
    #: > 0: file decoders that set no `threads` of their own use this many (the cores one file of the batch
    #: has: several files at once, each decoder with a thread per core of the machine, oversubscribe it)
    decode_threads: int = 0

    @property
    def outputs(self):
        return self.store if self.store is not None else LocalStore(Path.cwd())


@dataclass(frozen=True)
class ItemResult:
    """A finished run of one file: frames through the graph's progress stream, the problems nodes reported (a
    damaged input: what decoded was processed), and the outputs now under their final names."""

    frames: int
    seconds: float
    problems: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # final names in the store
    payloads: dict[str, bytes] = field(default_factory=dict)  # name -> contents, for a store only the driver sees


def run_item(spec: JobSpec, item: BatchItem, token: str,
             on_progress: Callable[[int, int], None] | None = None, poll_s: float = 0.25) -> ItemResult:
    """Run the graph once on `item.source`; outputs under temporary names (`token` makes them unique), put into
    place at the end. Raises what the graph raised, after removing the temporary files."""
    started = time.perf_counter()
    store = spec.outputs
    config, temps, still_stream = configure(spec, item, token)
    try:
        from .graph import Graph

        graph = Graph(config)
        progress = (config.cli.get("progress") or [None])[0]
        counted = [0, 0, None]  # frames, total, last frame on the still stream

        def count(packet) -> None:
            if packet is not None:
                counted[0] += 1
                if not counted[1]:
                    counted[1] = getattr(packet.payload, "total_frames", 0) or 0

        def keep(packet) -> None:
            if packet is not None:
                counted[2] = packet.payload

        handle = graph.start()
        if progress in handle.streams:
            handle.observe(progress, count, content=False)
        if still_stream is not None:
            handle.observe(still_stream, keep)
        while not handle.wait(timeout=poll_s):
            if on_progress is not None:
                on_progress(counted[0], counted[1])
        if still_stream is not None:
            save_image(counted[2], temps["output"])
        outputs, payloads = [], {}
        for flag, temp in temps.items():
            if temp.exists():
                name = item.outputs[flag]
                if store.shared:
                    store.commit(temp, name, token)
                else:
                    payloads[name] = temp.read_bytes()
                outputs.append(name)
        return ItemResult(counted[0], time.perf_counter() - started, handle.problems, outputs, payloads)
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
        store.discard()


def check_job(spec: JobSpec, item: BatchItem):
    """Load, override and validate the graph as it will run on `item` (raises GraphConfigError or
    GraphValidationError), so a mistake common to every file stops the batch before any file runs. Returns
    the validated config."""
    from .graph import Graph

    try:
        config, temps, _ = configure(spec, item, "check")
        for temp in temps.values():
            temp.unlink(missing_ok=True)
        Graph(config)
    finally:
        spec.outputs.discard()
    return config


def configure(spec: JobSpec, item: BatchItem, token: str):
    """The graph's config for one file: its flags, overrides and temporary output names; with the temporary
    path of each output flag and the stream an image input's still is taken from (None for a video)."""
    from .config import load_graph
    from .overrides import apply_overrides, flag_overrides

    config = load_graph(spec.graph)
    cwd = Path.cwd()
    overrides = list(spec.overrides) + flag_overrides(config, "source", str(item.source), base=cwd)
    for flag, value in spec.flags:
        overrides += flag_overrides(config, flag, value)
    for target in config.cli.get("display", []):
        overrides.append(Override(target.partition(".")[0], "enabled", False, "--output-dir (no window)"))
    temps: dict[str, Path] = {}
    still_stream = None
    for flag, final in item.outputs.items():
        temps[flag] = spec.outputs.stage(final, token)
        if flag == "output" and item.is_image and spec.stills:
            still_stream = _stream_into(config, "output")
            overrides += [Override(t.partition(".")[0], "enabled", False, "--output-dir (an image)")
                          for t in config.cli.get("output", [])]
        else:
            overrides += flag_overrides(config, flag, str(temps[flag]), enable=True, base=cwd)
    if spec.decode_threads:
        overrides += thread_shares(config, overrides, spec.decode_threads, "--jobs (cores per file)")
    apply_overrides(config, overrides)
    if spec.threads:
        config.set_default_threads(spec.threads)
    return config, temps, still_stream


def _stream_into(config, flag: str) -> str | None:
    """The stream the node a ``cli:`` flag names reads (the frames a video writer would encode)."""
    for target in config.cli.get(flag, []):
        try:
            node = config.node(target.partition(".")[0])
        except KeyError:
            continue
        for refs in node.inputs.values():
            for ref in refs:
                if not ref.back_edge:
                    return ref.stream
    return (config.cli.get("progress") or [None])[0]


def save_image(frame, path: Path) -> None:
    """An RGB `Frame` as an image file, the format from the suffix (PNG, JPEG, ...)."""
    if frame is None:
        raise RuntimeError("the image produced no frame")
    import av

    image = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
    codec = {".jpg": "mjpeg", ".jpeg": "mjpeg", ".bmp": "bmp", ".tif": "tiff", ".tiff": "tiff",
             ".webp": "libwebp"}.get(path.suffix.lower(), "png")
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream(codec)
        stream.width, stream.height = image.width, image.height
        stream.pix_fmt = {"mjpeg": "yuvj444p", "png": "rgb24", "bmp": "bgr24", "tiff": "rgb24",
                          "libwebp": "yuv420p"}[codec]
        for packet in stream.encode(image.reformat(format=stream.pix_fmt)):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def one_line(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
