"""``run-graph GRAPH --source A --source B`` / ``--sources streams.yaml``: several streams in one process.

Every stream runs its own instance of the graph (`multistream.StreamSet`); outputs are named per stream from
``{stream}`` templates; the exit code is 0 when every stream ended cleanly, 1 when any failed (one line each,
naming the stream), 130 after Ctrl-C or SIGTERM (every stream stopped, every output finalized).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from .executor import DEFAULT_EXECUTOR
from .interrupts import install_stop_signals
from .multistream import (StreamSet, StreamSetupError, StreamSpec, load_sources_file, parse_source_args,
                          split_named, stream_path)

log = logging.getLogger("framegraph")
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130
#: run-graph's flags that name an output file: one per stream, from a ``{stream}`` template.
PATH_FLAGS = ("output", "detections", "landmarks", "masks")
#: With several streams, each stream's nodes that name no executor share this many threads (unless --threads).
STREAM_THREADS = 2


def wants_streams(args) -> bool:
    """Several --source, a NAME=URL --source, or --sources: the run is one of streams."""
    sources = args.source or []
    return bool(args.sources) or len(sources) > 1 or any(split_named(s)[0] for s in sources)


def stream_specs(args) -> list[StreamSpec]:
    specs = parse_source_args(args.source or [])
    if args.sources:
        specs += load_sources_file(args.sources)
    names = [s.name for s in specs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise StreamSetupError(f"--source and --sources: stream name {', '.join(map(repr, twice))} given twice")
    return specs


def run_streams(args, graph_path: Path, flag_overrides) -> int:
    """`flag_overrides(config, args)`: run-graph's own mapping of its flags onto the graph's nodes."""
    from .config import load_graph
    from .graph import Graph
    from .overrides import Override, apply_overrides, parse_override, thread_shares

    if args.output_dir or args.jobs or args.ray:
        raise StreamSetupError("several streams run in one process; --output-dir, --jobs and --ray run one file "
                               "per process (give a folder or glob to --source instead)")
    if args.trace:
        raise StreamSetupError("--trace records one graph; run a single --source to trace it")
    specs = stream_specs(args)
    several = len(specs) > 1 or bool(args.serve)  # the page may add streams
    for flag in PATH_FLAGS:
        if getattr(args, flag):
            stream_path(getattr(args, flag), "x", f"--{flag}", several)  # refused now, before anything starts
    cwd = Path.cwd()

    def build(spec: StreamSpec) -> Graph:
        config = load_graph(graph_path)
        own = argparse.Namespace(**vars(args))
        own.source = spec.url
        own.no_display = True  # a window per stream is not a way to watch several: --serve is
        for flag in PATH_FLAGS:
            if getattr(args, flag):
                setattr(own, flag, stream_path(getattr(args, flag), spec.name, f"--{flag}", several))
        overrides = [parse_override(text, cwd) for text in args.overrides] + flag_overrides(config, own)
        for target in config.cli.get("source", []):
            node = target.partition(".")[0]
            overrides += [Override(node, key, value, f"stream {spec.name}: option {key}", cwd)
                          for key, value in spec.options.items()]
        for flag in ("detections", "landmarks"):  # their lines say which stream they are from
            if getattr(args, flag):
                overrides += [Override(t.partition(".")[0], "stream_name", spec.name, f"--{flag}")
                              for t in config.cli.get(flag, [])]
        if several:
            # Each stream's decoder on every core makes N streams' decoders fight for them (an A/B of
            # 4 streams: decoder threads=1 was 3-5% faster); a graph or --set that names threads wins.
            share = max(1, (os.cpu_count() or 1) // len(specs))
            overrides += thread_shares(config, overrides, share, f"stream {spec.name}: cores per stream")
        apply_overrides(config, overrides)
        if args.threads is not None:
            config.set_default_threads(args.threads)
        elif several and DEFAULT_EXECUTOR not in config.executors:
            # A thread per node and per stream is dozens of threads taking turns at one GIL; a pool per stream
            # keeps the hand-offs down, and with at least as many streams as cores one thread per stream does
            # away with them: the streams are the parallelism (benchmarks/streams.py: docs/benchmarks.md). Not
            # where a node waits on the world (a camera, a network stream, a paced file): it keeps a thread.
            if len(specs) >= (os.cpu_count() or 1) and not _may_block(Graph(config)):
                config.share_threads(1)
            else:
                config.set_default_threads(STREAM_THREADS)
        return Graph(config)

    graphs = {spec.name: build(spec) for spec in specs}  # every stream validated before any starts
    if args.validate:
        for name, graph in graphs.items():
            print(f"{graph.config.file} [{name}]: OK ({len(graph.plan.nodes)} nodes)")
        return EXIT_OK
    streams = StreamSet(lambda spec: graphs.pop(spec.name, None) or build(spec))
    serve = _serve_options(graphs[specs[0].name], args) if args.serve else None
    interrupted = install_stop_signals({"handle": streams}, "every stream")
    server = None
    try:
        for spec in specs:
            streams.add(spec)
        if serve is not None:
            server = _start_server(streams, specs[0].name, serve)
        stop_deadline = None
        while not streams.wait(timeout=0.2):
            if interrupted.is_set() and stop_deadline is None:
                stop_deadline = time.monotonic() + 15.0
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                log.warning("the streams did not drain within 15 s of Ctrl-C; cancelling")
                streams.cancel()
                stop_deadline = float("inf")
    except BaseException:
        streams.cancel()
        streams.wait(10)
        raise
    finally:
        if server is not None:
            server.stop()
    if args.stats:
        for name, handle in streams.all_handles().items():
            print(f"stream {name}:\n{handle.stats.table()}", file=sys.stderr)
    for name, problems in streams.problems().items():
        for problem in problems:
            print(f"warning: stream {name}: {problem}", file=sys.stderr)
    failures = streams.failures()
    for name, error in failures.items():
        print(f"error: stream {name}: {error}", file=sys.stderr)
    if interrupted.is_set():
        print("interrupted: outputs finalized", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failures or streams.problems() else EXIT_OK


def _may_block(graph) -> bool:
    return any(rn.cls.may_block(rn.options) for rn in graph.plan.nodes)


def _serve_options(graph, args):
    import dataclasses

    from .serve import choose_video_streams, resolve_options
    from .serve import server as _  # noqa: F401  an install hint now, not after the streams have started

    options, generated = resolve_options(args.serve, args.serve_token, args.serve_fps, tuple(args.serve_stream))
    options = dataclasses.replace(options, allow_sources=tuple(args.allow_source or ()))
    return options, generated, choose_video_streams(graph.plan, options.streams)


def _start_server(streams: StreamSet, first: str, serve):
    from .serve import start_server

    options, generated, shown = serve
    server = start_server(streams.handles()[first], options, shown, stream_set=streams)
    query = f"?token={options.token}" if options.token else ""
    print(f"live page: {server.url}{query} ({len(streams.names())} streams: {', '.join(streams.names())})",
          file=sys.stderr)
    if generated:
        print(f"  {options.host} is not a loopback address: every request needs that token (generated, printed "
              "only here; --serve-token sets one)", file=sys.stderr)
    return server


