"""``run-graph``: validate and run a graph file. Imports nothing heavy until a graph actually runs.

Exit codes: 0 done; 1 a node failed or a problem was reported (e.g. a truncated input); 2 the graph or the
command line is wrong; 130 interrupted (Ctrl-C), outputs finalized.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
log = logging.getLogger("framegraph")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run-graph",
        description="Run a framegraph calculator graph defined in YAML.",
        epilog="examples:\n"
               "  run-graph face_detect --source 0\n"
               "  run-graph face_detect --source clip.mp4 --output annotated.mp4 --detections faces.jsonl\n"
               "  run-graph face_track --source rtsp://cam1/live --source clip.mp4 --output 'out/{stream}.mp4'\n"
               "  run-graph face_blur --source videos/ --output-dir anonymized/ --jobs 2\n"
               "  run-graph my_graph.yaml --viz graph.svg\n"
               "  run-graph --list-graphs\n"
               "  run-graph --list-engines",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("graph", nargs="?", help="a graph YAML file, or a built-in graph by name (see --list-graphs)")
    io = p.add_argument_group("sources and sinks (as the graph's 'cli:' section maps them)")
    io.add_argument("--source", action="append", metavar="[NAME=]SOURCE",
                    help="camera index (0), video file, URL, image, folder or glob; repeat it for several streams "
                         "in one process (named cam0, cam1, ... or NAME=)")
    io.add_argument("--sources", metavar="STREAMS.yaml", help="several streams in one process: a YAML list of "
                                                              "{name, url, options} (the source node's options)")
    io.add_argument("--output", metavar="OUT.mp4", help="write the annotated video here (H.264); with --output-dir "
                                                        "a name such as '{stem}.mp4'")
    io.add_argument("--detections", metavar="OUT.jsonl", help="write detections here, one JSON line per frame; with "
                                                              "--output-dir a name such as '{stem}.jsonl'")
    io.add_argument("--landmarks", metavar="OUT.jsonl", help="write landmarks here, one JSON line per frame (the "
                                                            "solution graphs: hands, face_mesh, pose)")
    io.add_argument("--masks", metavar="DIR", help="write one 8-bit PNG mask per frame into DIR (segmentation graphs)")
    io.add_argument("--no-display", action="store_true", help="no window (automatic when there is no display)")
    io.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    io.add_argument("--realtime", action="store_true", help="pace files at their frame rate (as a camera would)")
    batch = p.add_argument_group("batch: the graph once per file of a folder or glob (resumable)")
    batch.add_argument("--output-dir", metavar="OUT", help="run once per file of --source; outputs named from each "
                                                          "input ({stem}.mp4, {stem}.jsonl, sub-folders kept) and "
                                                          "OUT/manifest.jsonl; a rerun skips what is done")
    batch.add_argument("--jobs", "-j", type=int, metavar="N",
                       help="files at once, each in a process of its own (default: the cores over the graph's threads)")
    batch.add_argument("--retries", type=int, default=1, metavar="N", help="attempts after a failure (default 1)")
    batch.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run each file as a Ray task: auto, ray://host:10001, or a local cluster when omitted "
                            "(needs framegraph[ray])")
    run = p.add_argument_group("graph")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.OPTION=VALUE",
                     help="override a node option (repeatable); VALUE is YAML: 2, true, [a, b]")
    run.add_argument("--engine", metavar="NAME[:DEVICE]",
                     help="the engine (and device) of the graph's inference, as its 'cli: engine:' maps it, e.g. "
                          "openvino, onnxruntime:cuda, tensorrt (see --list-engines)")
    run.add_argument("--threads", type=int, metavar="N",
                     help="nodes that name no executor share N threads (default: a thread each); with --output-dir, "
                          "per file")
    run.add_argument("--validate", action="store_true", help="check the graph and exit")
    obs = p.add_argument_group("observability")
    obs.add_argument("--stats", action="store_true", help="print a per-node table at the end")
    obs.add_argument("--trace", metavar="TRACE.json", help="write Chrome/Perfetto trace events")
    obs.add_argument("--viz", nargs="?", const="-", metavar="FILE",
                     help="print the graph as Graphviz DOT, or write FILE (.dot, .svg, .png, .mmd) and exit")
    obs.add_argument("--no-progress", action="store_true", help="no progress bar")
    obs.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    obs.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    live = p.add_argument_group("live page (needs framegraph[serve])")
    live.add_argument("--serve", nargs="?", const="127.0.0.1:8080", metavar="[HOST:]PORT",
                      help="while the graph runs, serve a page with its video, its drawing and per-node figures, a "
                           "JSON API and /metrics (default 127.0.0.1:8080; another host needs a token)")
    live.add_argument("--serve-token", metavar="TOKEN", help="require this token on every request (generated and "
                                                             "printed once when HOST is not loopback)")
    live.add_argument("--serve-stream", action="append", default=[], metavar="STREAM",
                      help="a stream to show as video (repeatable; default: the graph's annotated video)")
    live.add_argument("--allow-source", action="append", default=[], metavar="PREFIX",
                      help="with several streams: POST /api/streams may add only sources starting with PREFIX "
                           "(repeatable; default: network URLs only)")
    live.add_argument("--serve-fps", type=float, default=10.0, metavar="N",
                      help="encode each video for the page at most N times a second (default 10)")
    info = p.add_argument_group("information")
    info.add_argument("--list-engines", action="store_true", help="inference engines, installed or not, and exit")
    info.add_argument("--list-calculators", action="store_true", help="registered calculators and exit")
    info.add_argument("--list-graphs", action="store_true", help="built-in graphs with their descriptions and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    restore_logging = _setup_logging(args)
    try:
        return _main(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one readable line unless --debug
        from .errors import GraphConfigError, GraphValidationError, PipelineError

        if args.debug:
            traceback.print_exc()
        code = EXIT_USAGE if isinstance(exc, (GraphConfigError, GraphValidationError)) else EXIT_FAILED
        if isinstance(exc, GraphValidationError):
            for issue in exc.issues:
                print(f"error: {issue}", file=sys.stderr)
        elif isinstance(exc, PipelineError):
            print(f"error: {_describe(exc)}", file=sys.stderr)
        else:
            print(f"error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return code
    finally:
        restore_logging()


def _setup_logging(args) -> Callable[[], None]:
    """Our lines on stderr in our format; returns what puts the logger back, so that `main()` called from a
    program (or a test) leaves that program's logging as it found it."""
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(name)s] %(levelname)s: %(message)s" if args.debug
                                           else "[framegraph] %(message)s"))
    root = logging.getLogger("framegraph")
    before = root.handlers[:], root.level, root.propagate
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False

    def restore() -> None:
        root.handlers[:], root.propagate = before[0], before[2]
        root.setLevel(before[1])

    return restore


def _describe(exc: BaseException) -> str:
    from .errors import CalculatorError, PipelineError

    if isinstance(exc, CalculatorError) and isinstance(exc.original, PipelineError):
        original = str(exc.original)
        if original.startswith(f'node "{exc.node}"'):
            return original  # it says where already
        at = f" at timestamp {exc.timestamp}" if exc.timestamp is not None else ""
        return f'node "{exc.node}" ({exc.calculator}){at}: {original}'
    return str(exc)


def _main(args) -> int:
    if args.list_engines:
        return _list_engines()
    if args.list_calculators:
        return _list_calculators()
    if args.list_graphs:
        return _list_graphs()
    if not args.graph:
        build_parser().print_usage(sys.stderr)
        print("error: a graph is required: a built-in one by name (run-graph --list-graphs) or a YAML file",
              file=sys.stderr)
        return EXIT_USAGE
    from .multistream_cli import run_streams, wants_streams

    if wants_streams(args):
        return run_streams(args, _graph_path(args.graph), _flag_overrides)
    args.source = args.source[0] if args.source else None
    if args.serve and (args.output_dir or args.jobs or args.ray):
        from .serve import ServeOptionError

        raise ServeOptionError("--serve shows one running graph; it does not go with --output-dir, --jobs or --ray")
    if args.output_dir or args.jobs or args.ray:
        from .batch_cli import run_batch_command

        return run_batch_command(args, _graph_path(args.graph))
    from .config import load_graph
    from .graph import Graph
    from .overrides import apply_overrides, parse_override

    config = load_graph(_graph_path(args.graph))
    cwd = Path.cwd()
    apply_overrides(config, [parse_override(text, cwd) for text in args.overrides] + _flag_overrides(config, args))
    if args.threads is not None:
        config.set_default_threads(args.threads)
    if args.viz:
        from .viz import write_viz

        text = write_viz(config, args.viz)
        if text:
            sys.stdout.write(text)
        return EXIT_OK
    graph = Graph(config)
    if args.validate:
        print(f"{config.file}: OK ({len(graph.plan.nodes)} nodes)")
        return EXIT_OK
    return _run(graph, config, args)


def _graph_path(arg: str) -> Path:
    """A graph file, or a built-in graph by name (``face_detect``; ``graphs/face_detect.yaml`` also finds the
    built-in one from any folder where that path does not exist)."""
    import difflib

    from .errors import GraphConfigError
    from .resources import builtin_graphs, find_graph

    path = Path(arg)
    if path.is_file():
        return path
    looks_builtin = len(path.parts) == 1 or (len(path.parts) == 2 and path.parts[0] == "graphs")
    found = find_graph(path.name) if looks_builtin else None
    if found is not None:
        return found
    if path.suffix.lower() in (".yaml", ".yml") or len(path.parts) > 1:
        raise GraphConfigError(f"{arg}: graph file not found")
    names = [g.name for g in builtin_graphs()]
    close = difflib.get_close_matches(arg, names, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise GraphConfigError(f"{arg}: no such graph file or built-in graph.{hint} Built-in graphs: "
                           f"{', '.join(names) or '(none installed)'}")


def _flag_overrides(config, args) -> list:
    """run-graph's flags as overrides of the nodes the graph's 'cli:' section names."""
    from .overrides import Override, flag_overrides

    cwd = Path.cwd()
    found = []
    if args.source is not None:
        found += flag_overrides(config, "source", args.source, base=cwd)
    if args.output:
        found += flag_overrides(config, "output", args.output, enable=True, base=cwd)
    if args.detections:
        found += flag_overrides(config, "detections", args.detections, enable=True, base=cwd)
    if args.landmarks:
        found += flag_overrides(config, "landmarks", args.landmarks, enable=True, base=cwd)
    if args.masks:
        found += flag_overrides(config, "masks", args.masks, enable=True, base=cwd)
    if args.max_frames is not None:
        found += flag_overrides(config, "max_frames", args.max_frames)
    if args.realtime:
        found += flag_overrides(config, "realtime", True)
    if args.engine:
        found += flag_overrides(config, "engine", args.engine)
    if "display" in config.cli:
        show, why = (False, "--no-display") if args.no_display else _display_available(config)
        if not show:
            for target in config.cli["display"]:
                name = target.partition(".")[0]
                if not args.no_display and _enabled(config, name):
                    log.info("no window: %s", why)
                found.append(Override(name, "enabled", False, "--no-display" if args.no_display else "no display"))
    return found


def _enabled(config, name: str) -> bool:
    return any(n.enabled for n in config.nodes if n.name == name or n.name.startswith(name + "/"))


def _display_available(config) -> tuple[bool, str]:
    """Asks the calculator of each node the 'cli: display:' entry names (its `available()` classmethod)."""
    from .registry import CALCULATORS

    for target in config.cli.get("display", []):
        name = target.partition(".")[0]
        for node in config.nodes:
            if node.name != name or not node.enabled:
                continue
            try:
                cls = CALCULATORS.get(node.calculator)
            except Exception as exc:  # validation reports it properly
                return False, str(exc)
            probe = getattr(cls, "available", None)
            if callable(probe):
                ok, why = probe()
                if not ok:
                    return False, why
    return True, ""


def _run(graph, config, args) -> int:
    from .interrupts import install_stop_signals
    from .stats import write_trace

    serve = _serve_options(graph, args) if args.serve else None
    # Ctrl-C is caught from before the graph starts: one during start (an engine importing) would otherwise
    # break that import and read as its error. It stops the graph as soon as there is one.
    running: dict = {}
    interrupted = install_stop_signals(running)
    handle = running["handle"] = graph.start(trace=bool(args.trace))
    if interrupted.is_set():
        handle.stop()
    server = _start_server(handle, serve) if serve else None
    bar = _progress_bar(handle, config, args)
    try:
        stop_deadline = None
        while not handle.wait(timeout=0.2):
            if interrupted.is_set() and stop_deadline is None:
                stop_deadline = time.monotonic() + 15.0
            if stop_deadline is not None and time.monotonic() > stop_deadline:
                log.warning("the graph did not drain within 15 s of Ctrl-C; cancelling")
                handle.cancel()
                stop_deadline = float("inf")
    finally:
        if server is not None:
            server.stop()  # the page lives as long as the graph: its source ended, or Ctrl-C
        if bar is not None:
            bar.close()
        if args.stats:
            print(handle.stats.table(), file=sys.stderr)
        if args.trace:
            write_trace(handle.trace_events or [], handle.started_at, args.trace)
            log.info("trace written to %s (open it in ui.perfetto.dev)", args.trace)
    problems = handle.problems
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if interrupted.is_set():
        print("interrupted: outputs finalized", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if problems else EXIT_OK


def _serve_options(graph, args):
    """--serve's options, checked (and aiohttp imported) before the graph starts."""
    from .serve import choose_video_streams, resolve_options
    from .serve import server as _  # noqa: F401  an install hint now, not after the graph has started

    options, generated = resolve_options(args.serve, args.serve_token, args.serve_fps, tuple(args.serve_stream))
    return options, generated, choose_video_streams(graph.plan, options.streams)


def _start_server(handle, serve):
    from .serve import start_server

    options, generated, streams = serve
    try:
        server = start_server(handle, options, streams)
    except BaseException:
        handle.cancel()
        try:
            handle.wait(10)
        except Exception:  # the server's error is the one to report
            pass
        raise
    query = f"?token={options.token}" if options.token else ""
    shown = ", ".join(streams) or "no video stream"
    print(f"live page: {server.url}{query} ({shown})", file=sys.stderr)
    if generated:
        print(f"  {options.host} is not a loopback address: every request needs that token (generated, printed "
              "only here; --serve-token sets one)", file=sys.stderr)
    return server


def _progress_bar(handle, config, args):
    stream = (config.cli.get("progress") or [None])[0]
    if args.no_progress or args.quiet or stream is None or stream not in handle.streams:
        return None
    from tqdm import tqdm

    bar = tqdm(unit="frame", dynamic_ncols=True, disable=None, leave=True)
    limit = args.max_frames or 0

    def on_packet(packet) -> None:
        if packet is None:
            return
        if bar.total is None:
            total = getattr(packet.payload, "total_frames", 0) or 0
            if total:
                bar.total = min(total, limit) if limit else total
                bar.refresh()
        bar.update(1)

    handle.observe(stream, on_packet, content=False)  # counts frames, reads total_frames: never the pixels
    return bar


def _list_engines() -> int:
    from .engines import list_engines

    rows = list_engines()
    width = max(len(r["name"]) for r in rows) if rows else 4
    for r in rows:
        if r["installed"]:
            devices = ", ".join(r.get("devices") or []) or "?"
            names = ", ".join(r.get("device_names") or [])
            line = (f"{r['name']:<{width}}  {r.get('version') or '?':<12}  devices here: {devices}"
                    + (f" (accepts {names})" if names else "")
                    + f"  formats: {', '.join(r.get('formats') or [])}")
            if r.get("options"):
                line += f"  options: {', '.join(r['options'])}"
            if r.get("error"):
                line += f"  ({r['error']})"
            print(line)
        else:
            print(f"{r['name']:<{width}}  not installed  ({r.get('error') or r.get('hint', '')})")
    return EXIT_OK


def _list_calculators() -> int:
    from .registry import CALCULATORS

    for name in CALCULATORS.names():
        try:
            cls = CALCULATORS.get(name)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        except Exception as exc:  # a broken plugin must not hide the others
            doc = f"(failed to load: {exc})"
        print(f"{name:<36} {doc}")
    return EXIT_OK


def _list_graphs() -> int:
    from .resources import builtin_graphs

    graphs = builtin_graphs()
    width = max((len(g.name) for g in graphs), default=4)
    for g in graphs:
        print(f"{g.name:<{width}}  {g.description}")
    if not graphs:
        print("no built-in graphs installed", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
