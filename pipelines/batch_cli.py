"""``run-graph GRAPH --source DIR_OR_GLOB --output-dir OUT [--jobs N | --ray [ADDRESS]]``: the command line of a
batch run (pipelines/batch*.py do the work)."""
from __future__ import annotations

import logging
import sys
from dataclasses import replace
from pathlib import Path

from .errors import GraphConfigError

log = logging.getLogger("framegraph")


def run_batch_command(args, graph_path: Path) -> int:
    from .batch import DEFAULT_NAMES, check_template, expand_source, fingerprint, plan_batch
    from .batch_driver import available_cores, cores_per_file, default_jobs, run_batch
    from .batch_job import JobSpec, check_job
    from .batch_store import MANIFEST_NAME, open_store
    from .config import load_graph
    from .overrides import parse_override

    for flag in ("stats", "trace", "viz", "masks"):
        if getattr(args, flag):
            raise GraphConfigError(f"--{flag} cannot be used with --output-dir (a batch of files)")
    if not args.output_dir:
        raise GraphConfigError("--jobs and --ray run a batch: give --output-dir OUT (and --source, a folder or glob)")
    if args.source is None:
        raise GraphConfigError("--output-dir needs --source: a folder, a glob or a file")
    if args.jobs is not None and args.jobs < 1:
        raise GraphConfigError(f"--jobs must be at least 1, got {args.jobs}")
    if args.retries < 0:
        raise GraphConfigError(f"--retries must be 0 or more, got {args.retries}")
    if args.ray and not args.validate:  # Ray's import (about half a second) beside planning and validation
        import threading

        from .batch_ray import import_ray

        threading.Thread(target=import_ray, name="framegraph-import-ray", daemon=True).start()
    config = load_graph(graph_path)
    store = open_store(args.output_dir)
    names = {flag: check_template(flag, getattr(args, flag)) for flag in ("output", "detections", "landmarks")
             if getattr(args, flag)}
    if not names:
        names = {flag: name for flag, name in DEFAULT_NAMES.items() if config.cli.get(flag)}
    if not names:
        raise GraphConfigError(f"{graph_path}: the graph writes nothing per file: its 'cli:' section maps none of "
                               "'output', 'detections', 'landmarks'")
    items = plan_batch(expand_source(args.source, exclude=store.local_root()), names)
    cwd = Path.cwd()
    flags = tuple((flag, value) for flag, value in (("max_frames", args.max_frames), ("engine", args.engine),
                                                            ("realtime", True if args.realtime else None))
                  if value is not None)
    level = logging.DEBUG if args.debug else logging.WARNING
    spec = JobSpec(str(graph_path.resolve()), tuple(parse_override(t, cwd) for t in args.overrides), flags,
                   fingerprint=fingerprint(graph_path.read_text(), args.overrides, flags, sorted(names.items())),
                   log_level=level, store=store, threads=args.threads or 0)
    check_job(spec, items[0])  # a mistake common to every file: exit 2 before any file runs
    if args.validate:
        print(f"{graph_path}: OK for {len(items)} files into {store}")
        return 0
    if args.ray:
        from .batch_ray import RayPool

        device = (args.engine or "").partition(":")[2].lower()
        gpus = 1 if device.startswith(("cuda", "gpu")) else 0  # --engine NAME:cuda asks each task for a GPU
        backend = RayPool(spec, args.ray, args.jobs, cores_per_file(config, spec.threads), gpus)
        where = f"Ray ({backend.describe()})"
    else:
        from .batch_local import LocalPool

        jobs = min(args.jobs or default_jobs(config, len(items), spec.threads), len(items))
        if jobs > 1:  # each file's decoder gets its share of the cores, not a thread per core of the machine
            spec = replace(spec, decode_threads=max(1, available_cores() // jobs))
        backend = LocalPool(spec, jobs)
        where = f"{jobs} local process{'es' if jobs > 1 else ''}"
    log.info("%d files from %s into %s, %s", len(items), args.source, store, where)
    summary = run_batch(items, spec, backend, args.retries, progress=not (args.no_progress or args.quiet))
    print(f"{summary.done} done, {summary.failed} failed, {summary.skipped} skipped (done before); "
          f"{summary.frames} frames in {summary.seconds:.1f} s; manifest: {store.show(MANIFEST_NAME)}",
          file=sys.stderr)
    return summary.exit_code
