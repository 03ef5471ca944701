"""Soak (issue 10, item 6): one ``run-graph`` process on live RTSP streams for a long time, with a camera restarted
every few minutes. Real GStreamer RTSP servers on loopback (tests/support/rtsp_server.py) serve the streams (a
still face, so the detector finds one, and a moving test pattern, alternating); one of them is killed and started
again on the same port every --reconnect-every seconds, in turn. Every --sample-every seconds the run-graph process
is sampled: RSS, open file descriptors and threads from /proc, each stream's per-node figures from its live page
(GET /api/stats). At the end run-graph gets SIGINT and must exit 130 with every output finalized: each stream's
MP4 decodes and each JSON line parses.

Checks (PASS/FAIL): after the warm-up, RSS grows less than --max-growth-mb; file descriptors and threads at the end
are what they were at the start of the steady state (both read while every stream is connected, since a reconnect
in progress holds a socket and a decoder of its own); every kill shows one "connection lost" and one "reconnected
after" line in run-graph's stderr; each node's p99 at the last window is within --p99-ratio of the first window's
(nodes under --p99-floor-ms are left out: their ratios are noise). The p99 the API reports covers the whole run so
far, not the window: a slowdown shows in it only once it lasts a good part of a window.

    python benchmarks/soak.py [--minutes 30] [--streams 2] [--reconnect-every 180] [--sample-every 10] [--out DIR]
    python benchmarks/soak.py --minutes 3 --reconnect-every 60 --sample-every 5    # a quick look, not a soak

Needs the system Python's GStreamer RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0,
gstreamer1.0-plugins-{base,good,ugly}) and framegraph[serve]. Run it on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "support"))

from rtsp_server import HOST, RtspServer, free_port, unavailable_reason  # noqa: E402

GRAPH = REPO / "graphs" / "face_detect.yaml"
FACE_CLIP = REPO / "assets" / "media" / "astronaut_pan.mp4"
# A lost stream is tried again after 0.2 s, doubling to 1 s: a restarted camera is back within about a second of
# answering. A read timeout of 3 s: a kill closes the TCP connection, so the loss is seen at once anyway.
SOURCE_OPTIONS = ["source.reconnect_delay_s=0.2", "source.reconnect_max_delay_s=1", "source.read_timeout_s=3"]
MB = 1024 * 1024


# ---------------------------------------------------------------------- the cameras

def face_png(path: Path, width: int, height: int) -> Path:
    """The sample clip's first picture (one face), scaled to fit width x height and letterboxed (the clip is 4:3),
    as a PNG for the server to stream."""
    import av
    import numpy as np

    with av.open(str(FACE_CLIP)) as container:
        frame = next(container.decode(video=0))
    scale = min(width / frame.width, height / frame.height)
    w, h = round(frame.width * scale) // 2 * 2, round(frame.height * scale) // 2 * 2
    picture = frame.reformat(w, h, format="rgb24").to_ndarray()
    canvas = np.full((height, width, 3), 64, np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    canvas[top:top + h, left:left + w] = picture
    with av.open(str(path), "w", format="image2") as out:
        stream = out.add_stream("png")
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


# ---------------------------------------------------------------------- sampling run-graph

def proc_figures(pid: int) -> dict:
    """RSS (bytes), threads and open file descriptors of a live process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return {"rss": int(fields["VmRSS"].split()[0]) * 1024, "threads": int(fields["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def stream_nodes(stats: dict) -> dict[str, dict[str, dict]]:
    """{stream: {node: {in, out, p99, fps, status}}} from GET /api/stats (one stream: its body has no "streams")."""
    bodies = stats.get("streams") or {"": stats}
    return {name: {row["node"]: {"in": row["packets_in"], "out": row["packets_out"], "p99": row["latency_p99_ms"],
                                 "fps": row["fps"], "status": row["status"]} for row in body["nodes"]}
            for name, body in bodies.items()}


@dataclass
class Sample:
    t: float  # seconds since every stream first streamed
    rss: int
    threads: int
    fds: int
    streams: dict[str, dict[str, dict]]
    connected: bool  # every stream's source streaming: no reconnect in progress

    def line(self) -> str:
        return json.dumps({"t": round(self.t, 2), "rss_mb": round(self.rss / MB, 2), "threads": self.threads,
                           "fds": self.fds, "connected": self.connected, "streams": self.streams})


def take_sample(pid: int, api: str, t: float, sources: list[str], restarting: bool = False) -> Sample:
    """`restarting`: a server is down, whatever the statuses say (a loss takes a moment to be noticed)."""
    figures = proc_figures(pid)
    streams = stream_nodes(get_json(f"{api}/api/stats"))
    connected = not restarting and all(nodes[s]["status"] == "streaming" for nodes in streams.values()
                                       for s in sources if s in nodes)
    return Sample(t, figures["rss"], figures["threads"], figures["fds"], streams, connected)


# ---------------------------------------------------------------------- the run

@dataclass
class Soak:
    args: argparse.Namespace
    out: Path
    servers: dict[str, SoakRtspServer] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    kills: list[tuple[float, str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # the graph's video source nodes
    proc: subprocess.Popen | None = None

    @property
    def stderr_path(self) -> Path:
        return self.out / "run-graph.stderr"

    def start_servers(self) -> None:
        face = str(face_png(self.out / "face.png", *self.args.size))
        lifetime = self.args.minutes * 60 + 600  # outlives the soak and its shutdown; it also quits with us
        for i in range(self.args.streams):
            image = face if i % 2 == 0 else None  # cam0 a face, cam1 the moving pattern (320x240), ...
            self.servers[f"cam{i}"] = RtspServer(image, self.args.fps, lifetime_s=lifetime).start()

    def start_graph(self, port: int) -> None:
        command = [sys.executable, "-m", "pipelines", str(self.args.graph)]
        for name, server in self.servers.items():
            command += ["--source", f"{name}={server.url}"]
        command += ["--no-display", "--no-progress", "--detections", str(self.out / "{stream}.jsonl"),
                    "--output", str(self.out / "{stream}.mp4"), "--serve", f"{HOST}:{port}"]
        for option in SOURCE_OPTIONS:
            command += ["--set", option]
        print("run-graph:", " ".join(command[2:]), flush=True)
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err,
                                         stdin=subprocess.DEVNULL)

    def wait_streaming(self, api: str, timeout: float = 120.0) -> list[str]:
        """Wait until the page answers and every stream's sources stream; returns the source nodes' names."""
        deadline = time.monotonic() + timeout
        sources: list[str] = []
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"run-graph exited with {self.proc.returncode}:\n{self.stderr_tail()}")
            try:
                if not sources:  # the video sources (a graph's other source nodes, anchors say, never stream)
                    sources = [n["name"] for n in get_json(f"{api}/api/graph")["nodes"]
                               if n["source"] and n["calculator"] == "VideoSourceCalculator"]
                streams = stream_nodes(get_json(f"{api}/api/stats"))
                if len(streams) == len(self.servers) and all(
                        nodes.get(s, {}).get("status") == "streaming" for nodes in streams.values() for s in sources):
                    return sources
            except OSError:
                pass  # the page is not up yet
            time.sleep(0.5)
        raise TimeoutError(f"the streams were not all streaming after {timeout:.0f} s:\n{self.stderr_tail()}")

    def run(self) -> None:
        args = self.args
        port = free_port()
        api = f"http://{HOST}:{port}"
        self.start_servers()
        self.start_graph(port)
        sources = self.sources = self.wait_streaming(api)
        t0 = time.monotonic()
        duration = args.minutes * 60
        # No kill in the last stretch: the last restart must have recovered before the end is judged.
        last_kill = duration - max(30.0, 3 * args.sample_every)
        next_sample, next_kill, restart_at, victim, turn = 0.0, args.reconnect_every, None, None, 0
        print(f"streaming; soaking {args.minutes:g} min, a restart every {args.reconnect_every:g} s, "
              f"samples every {args.sample_every:g} s into {args.samples}", flush=True)
        with open(args.samples, "w") as samples_file:
            while (now := time.monotonic() - t0) < duration:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"run-graph exited with {self.proc.returncode} at {now:.0f} s:\n"
                                       f"{self.stderr_tail()}")
                # Sampled before a kill due at the same moment: the kill would not show in the statuses yet.
                if now >= next_sample:
                    sample = take_sample(self.proc.pid, api, now, sources, restarting=restart_at is not None)
                    self.samples.append(sample)
                    samples_file.write(sample.line() + "\n")
                    samples_file.flush()
                    next_sample += args.sample_every
                if restart_at is not None and now >= restart_at:
                    self.servers[victim].start()
                    samples_file.write(json.dumps({"t": round(now, 2), "event": "restarted", "stream": victim}) + "\n")
                    restart_at = None
                if restart_at is None and now >= next_kill and now <= last_kill:
                    victim = list(self.servers)[turn % len(self.servers)]
                    turn += 1
                    self.servers[victim].kill()
                    self.kills.append((now, victim))
                    samples_file.write(json.dumps({"t": round(now, 2), "event": "killed", "stream": victim}) + "\n")
                    restart_at, next_kill = now + args.outage_s, next_kill + args.reconnect_every
                time.sleep(0.1)
            if restart_at is not None:
                self.servers[victim].start()
            # One last sample taken with every stream connected, so the end is compared like with like.
            deadline = time.monotonic() + 30
            while not self.samples[-1].connected and time.monotonic() < deadline:
                time.sleep(1)
                sample = take_sample(self.proc.pid, api, time.monotonic() - t0, sources)
                self.samples.append(sample)
                samples_file.write(sample.line() + "\n")

    def stop_graph(self, timeout: float = 60.0) -> int | None:
        """SIGINT, as Ctrl-C; the exit code, or None if it did not exit in time (then it is killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            return None

    def stop_servers(self) -> None:
        for server in self.servers.values():
            server.__exit__(None, None, None)

    def stderr_tail(self, chars: int = 3000) -> str:
        return self.stderr_path.read_text()[-chars:] if self.stderr_path.exists() else ""


# ---------------------------------------------------------------------- the verdict

def median_mb(samples: list[Sample]) -> float:
    return statistics.median(s.rss for s in samples) / MB


def windows(samples: list[Sample], warmup: float, length: float) -> list[list[Sample]]:
    """The steady-state samples in consecutive windows of `length` seconds after the warm-up."""
    out: list[list[Sample]] = []
    for s in samples:
        if s.t < warmup:
            continue
        index = int((s.t - warmup) // length)
        while len(out) <= index:
            out.append([])
        out[index].append(s)
    return [w for w in out if w]


def window_fps(first: Sample, last: Sample, stream: str, node: str, count: str = "out") -> float:
    """Packets a node sent (or took: count="in", for a writer, which sends none) per second between two samples."""
    dt = last.t - first.t
    return (last.streams[stream][node][count] - first.streams[stream][node][count]) / dt if dt > 0 else 0.0


def reconnect_lines(stderr: str, url: str) -> tuple[int, int]:
    """'connection lost' and 'reconnected after' lines the source of `url` logged."""
    label = re.escape(f"({url}): ")
    lost = len(re.findall(label + r"connection lost", stderr))
    back = len(re.findall(label + r"reconnected after", stderr))
    return lost, back


def check_outputs(out: Path, streams: list[str]) -> list[tuple[str, bool, str]]:
    """Each stream's MP4 decodes to the frames its JSON lines count, and every line parses with rising stamps."""
    import av

    results = []
    for name in streams:
        mp4, jsonl = out / f"{name}.mp4", out / f"{name}.jsonl"
        try:
            with av.open(str(mp4)) as container:
                stream = container.streams.video[0]
                size = f"{stream.width}x{stream.height}"
                frames = sum(1 for _ in container.decode(video=0))
        except Exception as exc:  # any failure to open or decode is the finding
            results.append((f"{name}.mp4 plays", False, f"{type(exc).__name__}: {exc}"))
            continue
        try:
            records = [json.loads(line) for line in jsonl.read_text().splitlines()]
        except (OSError, ValueError) as exc:
            results.append((f"{name}.jsonl parses", False, f"{type(exc).__name__}: {exc}"))
            continue
        stamps = [r["timestamp_us"] for r in records]
        rising = all(b > a for a, b in zip(stamps, stamps[1:]))
        faces = sum(1 for r in records if r.get("detections"))
        results.append((f"{name}.mp4 plays", frames > 0, f"{frames} frames {size}, {mp4.stat().st_size / MB:.1f} MB"))
        results.append((f"{name}.jsonl parses", rising and len(records) > 0,
                        f"{len(records)} lines, {faces} with a face, timestamps "
                        f"{'strictly increasing' if rising else 'NOT increasing'}"))
        results.append((f"{name}: MP4 frames = JSON lines", frames == len(records), f"{frames} vs {len(records)}"))
    return results


def report(soak: Soak, rc: int | None) -> bool:
    args, samples = soak.args, soak.samples
    warmup = min(args.warmup_minutes * 60, args.minutes * 60 / 3)
    steady = [s for s in samples if s.t >= warmup]
    length = min(args.window_minutes * 60, max(args.sample_every, (args.minutes * 60 - warmup) / 3))
    groups = windows(samples, warmup, length)
    connected = [s for s in steady if s.connected]
    checks: list[tuple[str, bool, str]] = []
    print(f"\n=== soak: {samples[-1].t / 60:.1f} min, {len(soak.servers)} streams, {len(soak.kills)} restarts, "
          f"{len(samples)} samples ({len(connected)} steady ones with every stream connected); warm-up "
          f"{warmup / 60:.1f} min, windows of {length / 60:.1f} min ===")

    stderr = soak.stderr_path.read_text()
    for name, server in soak.servers.items():
        killed = sum(1 for _, v in soak.kills if v == name)
        lost, back = reconnect_lines(stderr, server.url)
        down = sum(1 for s in samples if not all(s.streams.get(name, {}).get(node, {}).get("status") == "streaming"
                                                 for node in soak.sources))
        checks.append((f"{name} reconnects", lost == killed and back == killed,
                       f"{killed} kills, {lost} 'connection lost', {back} 'reconnected after' "
                       f"({down} samples not streaming)"))
    problems = [line for line in stderr.splitlines() if line.startswith(("error:", "Traceback"))]
    checks.append(("no error or traceback in stderr", not problems, "; ".join(problems[:3]) or "none"))

    if len(connected) >= 2:
        first, last = connected[0], connected[-1]
        peak = max(s.rss for s in steady)
        growth = (last.rss - first.rss) / MB
        slope = _slope_mb_per_hour(connected)
        checks.append((f"RSS growth < {args.max_growth_mb:g} MB", growth < args.max_growth_mb,
                       f"{first.rss / MB:.1f} MB at {first.t / 60:.1f} min -> {last.rss / MB:.1f} MB at "
                       f"{last.t / 60:.1f} min: {growth:+.1f} MB (peak {(peak - first.rss) / MB:+.1f} MB, "
                       f"trend {slope:+.1f} MB/h)"))
        # The most common count of the first and the last window's connected samples, not two single samples:
        # native threads come and go all the time (about 60 a second here, by thread ids), so one sample can read
        # a couple fewer; a leak moves the usual count.
        head = [s for s in groups[0] if s.connected] or connected[:1]
        tail = [s for s in groups[-1] if s.connected] or connected[-1:]
        for what in ("fds", "threads"):
            a, b = _usual(head, what), _usual(tail, what)
            checks.append((f"{what} back to the same count", a == b,
                           f"usual {a} in the first window -> {b} in the last (first/last sample {getattr(first, what)}"
                           f"/{getattr(last, what)}, range {min(getattr(s, what) for s in steady)}-"
                           f"{max(getattr(s, what) for s in steady)})"))
    else:
        checks.append(("steady samples", False, "fewer than 2 samples with every stream connected after the warm-up"))

    if groups:
        _print_windows(groups, warmup, length, soak.sources[0])
        checks += _p99_checks(groups[0][-1], groups[-1][-1], args.p99_ratio, args.p99_floor_ms)

    checks.append(("run-graph exits 130 on SIGINT", rc in (130, 0), f"exit code {rc}"))
    checks += check_outputs(soak.out, list(soak.servers))

    print("\nchecks:")
    for what, ok, detail in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {what}: {detail}")
    passed = all(ok for _, ok, _ in checks)
    print(f"\nsoak {'PASS' if passed else 'FAIL'}; outputs, samples and run-graph's stderr in {soak.out}")
    return passed


def _usual(samples: list[Sample], what: str) -> int:
    """The most common value of a count; the higher one on a tie."""
    counts = [getattr(s, what) for s in samples]
    return max(set(counts), key=lambda v: (counts.count(v), v))


def _slope_mb_per_hour(samples: list[Sample]) -> float:
    """Least-squares RSS trend: a slow leak shows here before it crosses the limit."""
    if len(samples) < 2 or samples[-1].t == samples[0].t:
        return 0.0
    return statistics.linear_regression([s.t for s in samples], [s.rss / MB for s in samples]).slope * 3600


def _print_windows(groups: list[list[Sample]], warmup: float, length: float, source: str) -> None:
    names = list(groups[0][-1].streams)
    print("\nper window (RSS, fds, threads at its last sample; fps: frames each stream's source sent and its writer "
          "took in the window; p99: each stream's slowest node but the source, over the run so far):")
    head = ["minutes", "RSS MB", "fds", "threads"] + [f"{n} fps" for n in names] + [f"{n} p99 ms" for n in names]
    rows = []
    for i, group in enumerate(groups):
        start, end = groups[i - 1][-1] if i else group[0], group[-1]  # windows meet: none of the frames is lost
        row = [f"{(warmup + i * length) / 60:.1f}-{(warmup + (i + 1) * length) / 60:.1f}", f"{end.rss / MB:.1f}",
               str(end.fds), str(end.threads)]
        for n in names:
            sent, written = window_fps(start, end, n, source), window_fps(start, end, n, _writer(end, n), "in")
            row.append(f"{sent:.1f}/{written:.1f}")
        for n in names:  # the source's p99 is the wait for the camera's next frame: not work, left out here
            work = [(k, v) for k, v in end.streams[n].items() if k != source]
            node, figures = max(work, key=lambda kv: kv[1]["p99"])
            row.append(f"{figures['p99']:.1f} ({node})")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))


def _writer(sample: Sample, stream: str) -> str:
    nodes = sample.streams[stream]
    return "video_writer" if "video_writer" in nodes else list(nodes)[-1]


def _p99_checks(first: Sample, last: Sample, ratio: float, floor_ms: float) -> list[tuple[str, bool, str]]:
    checks = []
    for name, nodes in last.streams.items():
        judged = {node: (first.streams[name][node]["p99"], f["p99"]) for node, f in nodes.items()
                  if node in first.streams[name] and first.streams[name][node]["p99"] >= floor_ms}
        worst = max(judged.items(), key=lambda kv: kv[1][1] / kv[1][0], default=None)
        if worst is None:
            checks.append((f"{name} p99 flat", True, f"no node at or above {floor_ms:g} ms"))
            continue
        node, (a, b) = worst
        detail = ", ".join(f"{n} {x:.1f}->{y:.1f}" for n, (x, y) in judged.items())
        checks.append((f"{name} p99 last window <= {ratio:g}x first", b <= ratio * a,
                       f"worst {node} {b / a:.2f}x; ms: {detail}"))
    return checks


# ---------------------------------------------------------------------- command line

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="the soak after every stream streams (30)")
    parser.add_argument("--streams", type=int, default=2, help="RTSP servers and streams (2)")
    parser.add_argument("--reconnect-every", type=float, default=180.0, help="seconds between restarts (180)")
    parser.add_argument("--outage-s", type=float, default=2.0, help="seconds a killed server stays down (2)")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples (10)")
    parser.add_argument("--warmup-minutes", type=float, default=2.0,
                        help="left out of the checks (2; at most a third of the run)")
    parser.add_argument("--window-minutes", type=float, default=5.0,
                        help="latency windows (5; shorter when the run has fewer than 3)")
    parser.add_argument("--fps", type=int, default=15, help="the servers' frame rate (15)")
    parser.add_argument("--size", default="640x360", help="the face stream's size (the pattern is 320x240)")
    parser.add_argument("--graph", type=Path, default=GRAPH)
    parser.add_argument("--out", type=Path, help="outputs, samples and stderr (default: a new temporary folder)")
    parser.add_argument("--samples", type=Path, help="JSON lines of samples (default: OUT/samples.jsonl)")
    parser.add_argument("--max-growth-mb", type=float, default=20.0)
    parser.add_argument("--p99-ratio", type=float, default=1.5)
    parser.add_argument("--p99-floor-ms", type=float, default=1.0)
    args = parser.parse_args(argv)
    args.size = tuple(int(v) for v in args.size.lower().split("x"))
    if args.streams < 1:
        parser.error("--streams must be at least 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    why = unavailable_reason()
    if why:
        print(f"skipped: {why}")
        return 0
    out = args.out or Path(tempfile.mkdtemp(prefix="soak-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"soak: outputs, samples and run-graph's stderr in {out}", flush=True)
    args.samples = args.samples or out / "samples.jsonl"
    soak = Soak(args, out)
    rc = None
    try:
        soak.run()
        rc = soak.stop_graph()
    finally:
        if soak.proc is not None and soak.proc.poll() is None:
            soak.stop_graph()
        soak.stop_servers()
    return 0 if report(soak, rc) else 1


if __name__ == "__main__":
    sys.exit(main())
