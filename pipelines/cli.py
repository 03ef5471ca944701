"""``run-graph``: validate and run a graph file. Imports nothing heavy until a graph actually runs.

Exit codes: 0 done; 1 a node failed or a problem was reported (e.g. a truncated input); 2 the graph or the
command line is wrong; 130 interrupted (Ctrl-C), outputs finalized.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
import traceback

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
log = logging.getLogger("framegraph")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run-graph",
        description="Run a framegraph calculator graph defined in YAML.",
        epilog="examples:\n"
               "  run-graph graphs/face_detect.yaml --source 0\n"
               "  run-graph graphs/face_detect.yaml --source clip.mp4 --output annotated.mp4 --detections faces.jsonl\n"
               "  run-graph graphs/face_detect.yaml --viz graph.svg\n"
               "  run-graph --list-engines",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("graph", nargs="?", help="graph YAML file")
    io = p.add_argument_group("sources and sinks (as the graph's 'cli:' section maps them)")
    io.add_argument("--source", help="camera index (0), video file, URL, image, folder or glob")
    io.add_argument("--output", metavar="OUT.mp4", help="write the annotated video here (H.264)")
    io.add_argument("--detections", metavar="OUT.jsonl", help="write detections here, one JSON line per frame")
    io.add_argument("--no-display", action="store_true", help="no window (automatic when there is no display)")
    io.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    io.add_argument("--realtime", action="store_true", help="pace files at their frame rate (as a camera would)")
    run = p.add_argument_group("graph")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="NODE.OPTION=VALUE",
                     help="override a node option (repeatable); VALUE is YAML: 2, true, [a, b]")
    run.add_argument("--engine", metavar="NAME[:DEVICE]",
                     help="run every inference node on this engine, e.g. openvino, onnxruntime:cuda, tensorrt "
                          "(see --list-engines)")
    run.add_argument("--validate", action="store_true", help="check the graph and exit")
    obs = p.add_argument_group("observability")
    obs.add_argument("--stats", action="store_true", help="print a per-node table at the end")
    obs.add_argument("--trace", metavar="TRACE.json", help="write Chrome/Perfetto trace events")
    obs.add_argument("--viz", nargs="?", const="-", metavar="FILE",
                     help="print the graph as Graphviz DOT, or write FILE (.dot, .svg, .png, .mmd) and exit")
    obs.add_argument("--no-progress", action="store_true", help="no progress bar")
    obs.add_argument("--quiet", "-q", action="store_true", help="only warnings and errors")
    obs.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    info = p.add_argument_group("information")
    info.add_argument("--list-engines", action="store_true", help="inference engines, installed or not, and exit")
    info.add_argument("--list-calculators", action="store_true", help="registered calculators and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args)
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


def _setup_logging(args) -> None:
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[%(name)s] %(levelname)s: %(message)s" if args.debug
                                           else "[framegraph] %(message)s"))
    root = logging.getLogger("framegraph")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


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
    if not args.graph:
        build_parser().print_usage(sys.stderr)
        print("error: a graph file is required (for example graphs/face_detect.yaml)", file=sys.stderr)
        return EXIT_USAGE
    from .config import load_graph
    from .graph import Graph

    config = load_graph(args.graph, args.overrides)
    _apply_cli_flags(config, args)
    if args.viz:
        from .viz import write_viz

        text = write_viz(config, args.viz)
        if text:
            sys.stdout.write(text)
        return EXIT_OK
    graph = Graph(config)
    if args.validate:
        print(f"{args.graph}: OK ({len(graph.plan.nodes)} nodes)")
        return EXIT_OK
    return _run(graph, config, args)


def _apply_cli_flags(config, args) -> None:
    from .config import set_node_value
    from .errors import GraphConfigError

    def targets(flag: str) -> list[tuple]:
        found = []
        for target in config.cli.get(flag, []):
            node_name, _, key = target.partition(".")
            try:
                found.append((config.node(node_name), key))
            except KeyError:
                raise GraphConfigError(f"{config.file}: cli: '{flag}' names node '{node_name}', which the graph "
                                       "does not have") from None
        if not found:
            raise GraphConfigError(f"{config.file}: this graph does not take --{flag.replace('_', '-')} "
                                   f"(its 'cli:' section maps: {', '.join(config.cli) or 'nothing'})")
        return found

    def set_flag(flag: str, value, enable: bool = False) -> None:
        for node, key in targets(flag):
            if enable:
                node.enabled = True
            if key:
                set_node_value(node, key, value, f"--{flag.replace('_', '-')}")

    if args.source is not None:
        set_flag("source", args.source)
    if args.output:
        set_flag("output", args.output, enable=True)
    if args.detections:
        set_flag("detections", args.detections, enable=True)
    if args.max_frames is not None:
        set_flag("max_frames", args.max_frames)
    if args.realtime:
        set_flag("realtime", True)
    if "display" in config.cli:
        show, why = (False, "--no-display") if args.no_display else _display_available()
        if not show:
            for node, _ in targets("display"):
                if node.enabled and not args.no_display:
                    log.info("no window: %s", why)
                node.enabled = False
    if args.engine:
        nodes = [n for n in config.nodes if n.calculator == "InferenceCalculator"]
        if not nodes:
            raise GraphConfigError(f"{config.file}: --engine: the graph has no InferenceCalculator node")
        name, _, device = args.engine.partition(":")
        # TensorRT only runs on a GPU; every other engine keeps the graph's device unless one is named.
        device = device or ("cuda" if name == "tensorrt" else "")
        for node in nodes:
            node.options["engine"] = [name]
            node.options["allow_fallback"] = False
            if device:
                node.options["device"] = device


def _display_available() -> tuple[bool, str]:
    try:
        from calculators.io.display import display_available
    except ImportError as exc:
        return False, f"display support is not installed ({exc})"
    return display_available()


def _run(graph, config, args) -> int:
    from .stats import write_trace

    handle = graph.start(trace=bool(args.trace))
    bar = _progress_bar(handle, config, args)
    interrupted = _install_sigint(handle)
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
        if bar is not None:
            bar.close()
        if args.stats:
            print(handle.stats.table(), file=sys.stderr)
        if args.trace:
            write_trace(handle.trace_events or [], handle.runner.started_at, args.trace)
            log.info("trace written to %s (open it in ui.perfetto.dev)", args.trace)
    for problem in handle.runner.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if interrupted.is_set():
        print("interrupted: outputs finalized", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_FAILED if handle.runner.problems else EXIT_OK


def _install_sigint(handle) -> threading.Event:
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return interrupted

    def on_sigint(signum, frame):
        if interrupted.is_set():
            os._exit(EXIT_INTERRUPTED)  # second Ctrl-C: leave now
        interrupted.set()
        print("\nstopping: finishing outputs (Ctrl-C again to quit at once)", file=sys.stderr)
        handle.stop()

    signal.signal(signal.SIGINT, on_sigint)
    return interrupted


def _progress_bar(handle, config, args):
    stream = (config.cli.get("progress") or [None])[0]
    if args.no_progress or args.quiet or stream is None or stream not in handle.runner.streams:
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

    handle.runner.observe(stream, on_packet)
    return bar


def _list_engines() -> int:
    try:
        from calculators.inference.engines import list_engines
    except ImportError as exc:
        print(f"error: the inference calculators are not available: {exc}", file=sys.stderr)
        return EXIT_FAILED
    rows = list_engines()
    width = max(len(r["name"]) for r in rows) if rows else 4
    for r in rows:
        if r["installed"]:
            devices = ", ".join(r.get("devices") or []) or "?"
            print(f"{r['name']:<{width}}  {r.get('version') or '?':<12}  devices: {devices}  "
                  f"formats: {', '.join(r.get('formats') or [])}")
        else:
            print(f"{r['name']:<{width}}  not installed  ({r.get('hint', '')})")
    return EXIT_OK


def _list_calculators() -> int:
    from . import registry

    for name in registry.known_names():
        try:
            cls = registry.get_calculator(name)
            doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        except Exception as exc:  # a broken plugin must not hide the others
            doc = f"(failed to load: {exc})"
        print(f"{name:<36} {doc}")
    for module, why in sorted(registry.import_failures.items()):
        print(f"(not loaded: {module}: {why})")
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
