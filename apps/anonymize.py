"""Anonymize the faces in videos and images: graphs/face_blur.yaml run once per file.

    python apps/anonymize.py clip.mp4 holiday/ --out-dir anonymized/ [--mode pixelate] [--engine openvino]

Each video becomes OUT_DIR/<name>_anonymized.mp4 (H.264, the source's size, rate and frame count, its audio
kept); each image OUT_DIR/<name>_anonymized.<ext>. A folder stands for the videos and images directly in it
(files already named *_anonymized are skipped, so re-running on a folder that also holds the results works).
A failing file is reported in one line and the others still run. Exit code: 0 all done, 1 some file failed
or was damaged, 2 bad arguments (nothing to do), 130 interrupted (the current file is finalized).
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
STREAM = "anonymized_video"  # the graph's output stream: counted for progress, saved for images
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python apps/anonymize.py", description=__doc__.split("\n\n")[0],
                                epilog="examples:\n  python apps/anonymize.py clip.mp4 --out-dir out/\n"
                                       "  python apps/anonymize.py videos/ photos/ --out-dir out/ --mode pixelate",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video or image files, or folders of them")
    p.add_argument("--out-dir", required=True, type=Path, help="where the anonymized files go (created)")
    p.add_argument("--mode", choices=("blur", "pixelate", "fill"), default="blur", help="how faces are hidden")
    p.add_argument("--shape", choices=("ellipse", "rect"), default="ellipse", help="the region hidden per face")
    p.add_argument("--padding", type=float, help="grow face boxes by this fraction per side (graph: 0.2)")
    p.add_argument("--strength", type=float, help="blur / block size relative to the face (default 1.0)")
    p.add_argument("--engine", help="inference engine for the detector (run-graph --list-engines)")
    p.add_argument("--graph", default=GRAPH, help="the graph to run: a YAML file or a built-in graph's name "
                                                 "(default: face_blur)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.OPTION=VALUE",
                   help="override any node option of the graph (repeatable)")
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
    from pipelines import GraphConfigError, GraphValidationError

    args.out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for src, dst in plan(files, args.out_dir):
        try:
            problems = anonymize_file(src, dst, args)
        except KeyboardInterrupt:
            print(f"interrupted: {src} (what was written is playable)", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (GraphConfigError, GraphValidationError) as exc:  # the same for every file: stop here
            print(f"error: {one_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
        except Exception as exc:  # noqa: BLE001 -- one bad file must not stop the others
            failed += 1
            dst.unlink(missing_ok=True)  # a partial result must not pass for a finished one
            print(f"error: {src}: {one_line(exc)}", file=sys.stderr)
            continue
        if problems:
            failed += 1
            print(f"warning: {src}: {one_line(problems[0])} (the frames that decoded were anonymized: {dst})",
                  file=sys.stderr)
    print(f"{len(files) - failed} of {len(files)} files anonymized into {args.out_dir}", file=sys.stderr)
    return EXIT_FAILED if failed or missing else EXIT_OK


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


def plan(files: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """Each input with its output: <name>_anonymized.mp4 (images keep their format); a name met twice (a/x.mp4,
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
        pairs.append((src, out_dir / name))
    return pairs


def anonymize_file(src: Path, dst: Path, args) -> list[str]:
    """Run the graph on one file; returns the problems reported (a damaged file), raises on failure."""
    from tqdm import tqdm

    from pipelines import Graph, Override, apply_overrides, flag_overrides, load_graph, parse_override

    config = load_graph(graph_file(args.graph))
    image = src.suffix.lower() in IMAGE_SUFFIXES
    cwd = Path.cwd()
    overrides = [parse_override(text, cwd) for text in args.overrides]
    overrides += flag_overrides(config, "source", str(src), base=cwd)
    me = "apps/anonymize.py"
    settings = {"anonymize.mode": args.mode, "anonymize.shape": args.shape, "display.enabled": False,
                "detections_writer.enabled": False, "video_writer.enabled": not image}
    if args.padding is not None:
        settings["anonymize.padding"] = args.padding
    if args.strength is not None:
        settings["anonymize.strength"] = args.strength
    overrides += [Override(*target.split("."), value, f"{me} ({target})") for target, value in settings.items()]
    if not image:
        overrides += flag_overrides(config, "output", str(dst), base=cwd)
    if args.engine:
        overrides += flag_overrides(config, "engine", args.engine)
    apply_overrides(config, overrides)
    handle = Graph(config).start(outputs=[STREAM])
    last = None
    with tqdm(desc=src.name, unit="frame", dynamic_ncols=True, leave=True, file=sys.stderr) as bar:
        try:
            for packet in handle.outputs(STREAM):
                if bar.total is None and packet.payload.total_frames:
                    bar.total = packet.payload.total_frames
                    bar.refresh()
                bar.update(1)
                last = packet.payload
        except KeyboardInterrupt:
            handle.stop()  # finish the frames in flight and finalize the file
            handle.wait(15)
            raise
        handle.wait()
    if image:
        save_image(last, dst)
    return handle.problems


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


def save_image(frame, dst: Path) -> None:
    import cv2

    if frame is None:
        raise RuntimeError("the image produced no frame")
    if not cv2.imwrite(str(dst), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {dst}")


def one_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


if __name__ == "__main__":
    raise SystemExit(main())
