"""Anonymize the faces in videos and images: graphs/face_blur.yaml run once per file.

    python apps/anonymize.py clip.mp4 holiday/ --out-dir anonymized/ [--mode pixelate] [--engine openvino]

Each video becomes OUT_DIR/<name>_anonymized.mp4 (H.264, the source's size, rate and frame count, its audio
kept); each image OUT_DIR/<name>_anonymized.<ext>. A folder stands for the videos and images directly in it
(files already named *_anonymized are skipped, so re-running on a folder that also holds the results works).
Files run in parallel (--jobs N, each in a process of its own; pipelines/batch*.py, as `run-graph --output-dir`
runs them): one progress bar, one line per finished or failed file. An output appears under its name only when
complete; OUT_DIR/manifest.jsonl records every file, so running the same command again skips what is done and
redoes what failed, changed or was interrupted. With --ray the files run as tasks of a Ray cluster instead, and
--out-dir may be an fsspec URL (s3://bucket/out). A failing file is retried (--retries), then reported in one
line, and the others still run. Exit code: 0 all done, 1 some file failed or was damaged, 2 bad arguments
(nothing to do), 130 interrupted (the files in progress are removed; run again to resume).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

GRAPH = "face_blur"  # the built-in graph, found like run-graph finds it (pipelines.resources)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".wmv", ".flv",
                  ".3gp")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python apps/anonymize.py", description=__doc__.split("\n\n")[0],
                                epilog="examples:\n  python apps/anonymize.py clip.mp4 --out-dir out/\n"
                                       "  python apps/anonymize.py videos/ photos/ --out-dir out/ --mode pixelate",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video or image files, or folders of them")
    p.add_argument("--out-dir", required=True, help="where the anonymized files go (created): a folder, or an fsspec "
                                                   "URL such as s3://bucket/out (needs framegraph[remote])")
    p.add_argument("--mode", choices=("blur", "pixelate", "fill"), default="blur", help="how faces are hidden")
    p.add_argument("--shape", choices=("ellipse", "rect"), default="ellipse", help="the region hidden per face")
    p.add_argument("--padding", type=float, help="grow face boxes by this fraction per side (graph: 0.2)")
    p.add_argument("--strength", type=float, help="blur / block size relative to the face (default 1.0)")
    p.add_argument("--engine", help="inference engine for the detector (run-graph --list-engines)")
    p.add_argument("--graph", default=GRAPH, help="the graph to run: a YAML file or a built-in graph's name "
                                                 "(default: face_blur)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.OPTION=VALUE",
                   help="override any node option of the graph (repeatable)")
    p.add_argument("--jobs", "-j", type=int, metavar="N", help="files at once, each in a process of its own "
                                                               "(default: as many as the cores allow)")
    p.add_argument("--retries", type=int, default=1, metavar="N", help="attempts after a failure (default 1)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run each file as a Ray task: auto, HOST:PORT, ray://host:10001, or a local cluster when "
                        "omitted (needs framegraph[ray])")
    p.add_argument("--threads", type=int, metavar="N",
                   help="each file's nodes share N threads (1: the most files per second with --jobs = cores)")
    p.add_argument("--verbose", "-v", action="store_true", help="the graph's own log lines")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(format="[%(name)s] %(message)s")
    logging.getLogger("framegraph").setLevel(logging.INFO if args.verbose else logging.WARNING)
    files, missing = collect(args.inputs)
    for path in missing:
        print(f"error: {path}: no such file or folder, or a folder without videos or images", file=sys.stderr)
    if not files:
        print("error: nothing to anonymize", file=sys.stderr)
        return EXIT_USAGE
    if args.jobs is not None and args.jobs < 1 or args.retries < 0 or args.threads is not None and args.threads < 1:
        print("error: --jobs and --threads must be at least 1 and --retries at least 0", file=sys.stderr)
        return EXIT_USAGE
    from pipelines import EngineUnavailableError, GraphConfigError, GraphValidationError
    from pipelines.batch import item_for
    from pipelines.batch_driver import cores_per_file, default_jobs, run_batch
    from pipelines.batch_job import check_job
    from pipelines.batch_store import open_store

    items = [item_for(src, str(src), {"output": name}) for src, name in plan(files)]
    try:
        spec = job_spec(args, open_store(args.out_dir))
        config = check_job(spec, items[0])  # the same for every file: stop here
        if args.ray:
            from pipelines.batch_ray import RayPool

            backend = RayPool(spec, args.ray, args.jobs, cores_per_file(config, spec.threads))
        else:
            from pipelines.batch_local import LocalPool

            backend = LocalPool(spec, min(args.jobs or default_jobs(config, len(items), spec.threads), len(items)))
    except (GraphConfigError, GraphValidationError, EngineUnavailableError) as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    summary = run_batch(items, spec, backend, args.retries)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    print(f"{len(files) - summary.failed} of {len(files)} files anonymized into {args.out_dir}"
          + (f" ({summary.skipped} done in an earlier run)" if summary.skipped else ""), file=sys.stderr)
    return EXIT_FAILED if summary.failed or missing else EXIT_OK


def job_spec(args, store=None):
    """What every file runs: the graph, --set, and this app's settings as overrides of the graph's nodes."""
    from pipelines import Override, parse_override
    from pipelines.batch import fingerprint
    from pipelines.batch_job import JobSpec

    graph = graph_file(args.graph)
    cwd = Path.cwd()
    overrides = [parse_override(text, cwd) for text in args.overrides]
    settings = {"anonymize.mode": args.mode, "anonymize.shape": args.shape, "detections_writer.enabled": False}
    if args.padding is not None:
        settings["anonymize.padding"] = args.padding
    if args.strength is not None:
        settings["anonymize.strength"] = args.strength
    overrides += [Override(*target.split("."), value, f"apps/anonymize.py ({target})")
                  for target, value in settings.items()]
    flags = (("engine", args.engine),) if args.engine else ()
    return JobSpec(str(graph.resolve()), tuple(overrides), flags,
                   fingerprint=fingerprint(graph.read_text(), args.overrides, sorted(settings.items()), flags),
                   log_level=logging.INFO if args.verbose else logging.WARNING, store=store,
                   threads=args.threads or 0)


def collect(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """The files to process, in order and without repeats; and the inputs that name nothing usable."""
    files: list[Path] = []
    missing: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_media(p)
                           and not p.stem.endswith("_anonymized"))
            if not found:
                missing.append(item)
            files.extend(found)
        elif path.is_file():
            files.append(path)  # named explicitly: tried whatever its extension
        else:
            missing.append(item)
    unique = list(dict.fromkeys(p.resolve() for p in files))
    return unique, missing


def is_media(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES


def plan(files: list[Path]) -> list[tuple[Path, str]]:
    """Each input with its output's name in the output folder: <name>_anonymized.mp4 (images keep their format); a name met twice (a/x.mp4,
    b/x.mov) gets _2, _3, ... so no output overwrites another."""
    used: set[str] = set()
    pairs = []
    for src in files:
        suffix = src.suffix.lower() if src.suffix.lower() in IMAGE_SUFFIXES else ".mp4"
        name, n = f"{src.stem}_anonymized{suffix}", 1
        while name in used:
            n += 1
            name = f"{src.stem}_anonymized_{n}{suffix}"
        used.add(name)
        pairs.append((src, name))
    return pairs


def graph_file(name: str) -> Path:
    from pipelines import GraphConfigError
    from pipelines.resources import find_graph

    path = Path(name)
    if path.is_file():
        return path
    found = find_graph(name)
    if found is None:
        raise GraphConfigError(f"{name}: no such graph file or built-in graph (run-graph --list-graphs)")
    return found


def one_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
