"""Many streams, one process: per-stream outputs, a dead stream failing alone, one engine session for every
stream, state per stream, the HTTP API adding and removing streams, SIGTERM finalizing every output."""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tiny_media import make_clip

pytest.importorskip("av", reason="the clips need PyAV (framegraph[video])")

ROOT = Path(__file__).resolve().parents[2]
MEDIA = ROOT / "assets" / "media"
DEAD = "rtsp://127.0.0.1:1/x"  # nothing listens on port 1: refused at once


@pytest.fixture
def own_signals():
    """run-graph installs SIGINT/SIGTERM handlers when called on the main thread, and a log handler on the
    test's captured stderr: give pytest its own back."""
    import logging

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger("framegraph")
    handlers, level, propagate = root.handlers[:], root.level, root.propagate
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)
    root.handlers[:], root.level, root.propagate = handlers, level, propagate


def frames_in(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- names, files, paths (fast)

def test_source_flags_name_streams_by_position_or_by_name():
    from pipelines.multistream import parse_source_args

    specs = parse_source_args(["rtsp://h/a", "door=rtsp://h/b", "http://h/v?x=1&y=2"])
    assert [(s.name, s.url) for s in specs] == [("cam0", "rtsp://h/a"), ("door", "rtsp://h/b"),
                                                ("cam2", "http://h/v?x=1&y=2")]


def test_sources_file_errors_name_the_file_and_the_entry(tmp_path):
    from pipelines.multistream import StreamSetupError, load_sources_file

    good = tmp_path / "streams.yaml"
    good.write_text("- {name: a, url: rtsp://h/a, options: {realtime: true}}\n- url: clip.mp4\n")
    specs = load_sources_file(good)
    assert [(s.name, s.url, s.options) for s in specs] == [("a", "rtsp://h/a", {"realtime": True}),
                                                           ("cam1", "clip.mp4", {})]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: a, url: rtsp://h/a}\n- {name: b, uri: rtsp://h/b}\n")
    with pytest.raises(StreamSetupError, match=r"bad\.yaml:2: stream 2: unknown key 'uri'"):
        load_sources_file(bad)
    bad.write_text("- {name: 'a b', url: x}\n")
    with pytest.raises(StreamSetupError, match=r"bad\.yaml:1: stream 1: stream name 'a b'"):
        load_sources_file(bad)
    bad.write_text("- !!python/object:os.system {}\n")
    with pytest.raises(StreamSetupError, match=r"bad\.yaml:1: YAML tag .* is not allowed"):
        load_sources_file(bad)


def test_an_output_without_stream_field_is_refused_with_several_streams(tmp_path, capsys, own_signals):
    from pipelines.cli import main

    code = main(["face_detect", "--source", "a.mp4", "--source", "b.mp4", "--output", str(tmp_path / "o.mp4")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--output" in err and "needs '{stream}'" in err and "Traceback" not in err


@pytest.mark.parametrize("extra, expected", [([], 2), (["--set", "source.threads=3"], 3)])
def test_each_streams_decoder_gets_a_share_of_the_cores(tmp_path, monkeypatch, capsys, own_signals, extra,
                                                        expected):
    import pipelines.graph
    from pipelines.cli import main

    built = []

    class Recorded(pipelines.graph.Graph):
        def __init__(self, config):
            built.append(config)
            super().__init__(config)

    monkeypatch.setattr(pipelines.graph, "Graph", Recorded)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    clips = [make_clip(tmp_path / f"{i}.mp4", 2) for i in range(2)]
    code = main(["face_detect", "--validate", "--source", str(clips[0]), "--source", str(clips[1]), *extra])
    assert code == 0, capsys.readouterr().err
    assert [c.node("source").options.get("threads") for c in built] == [expected, expected]


@pytest.mark.parametrize("cores, extra, expected", [
    (2, [], {"default": 1}),  # as many file streams as cores: one thread per stream, its whole graph on it
    (2, ["--realtime"], {"default": 2, "inference": 1}),  # a paced source sleeps on its thread: the graph's split
    (4, [], {"default": 2, "inference": 1}),  # fewer streams than cores: each keeps its pipelining
])
def test_with_as_many_streams_as_cores_each_streams_graph_runs_on_one_thread(tmp_path, monkeypatch, capsys,
                                                                             own_signals, cores, extra, expected):
    import pipelines.graph
    from pipelines.cli import main

    built = {}

    class Recorded(pipelines.graph.Graph):
        def __init__(self, config):
            super().__init__(config)
            built[id(config)] = config

    monkeypatch.setattr(pipelines.graph, "Graph", Recorded)
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    clips = [make_clip(tmp_path / f"{i}.mp4", 2) for i in range(2)]
    code = main(["face_detect", "--validate", "--source", str(clips[0]), "--source", str(clips[1]), *extra])
    assert code == 0, capsys.readouterr().err
    assert len(built) == 2, "a graph per stream"
    for config in built.values():
        assert {name: ex.threads for name, ex in config.executors.items()} == expected
        assert {n.executor for n in config.nodes} == ({None} if len(expected) == 1 else {None, "inference"})


def test_a_video_source_says_when_it_waits_on_the_world():
    from calculators.io.video_source import VideoSourceCalculator as Source

    assert not Source.may_block(Source.Options(source="clip.mp4"))
    assert Source.may_block(Source.Options(source="clip.mp4", realtime=True))
    assert Source.may_block(Source.Options(source="0")) and Source.may_block(Source.Options(source="rtsp://cam/1"))


def test_http_may_add_network_urls_or_allowed_prefixes_only():
    from pipelines.serve.streams_api import refusal

    assert refusal("rtsp://cam/1", ()) is None
    assert "network URLs" in refusal("/etc/passwd", ())
    assert "network URLs" in refusal("file:///etc/passwd", ())
    assert "network URLs" in refusal("0", ())
    assert refusal("rtsp://cams/2", ("rtsp://cams/",)) is None
    assert "outside the allowed list" in refusal("rtsp://other/2", ("rtsp://cams/",))
    assert refusal("/data/clips/a.mp4", ("/data/clips/",)) is None
    assert "outside the allowed list" in refusal("/data/clips/../secret.mp4", ("/data/clips/",))
    assert "outside the allowed list" in refusal("/data/clips2/a.mp4", ("/data/clips",))
    assert "absolute path" in refusal("clips/a.mp4", ("/data/clips/",))


# ---------------------------------------------------------------- real runs

def test_streams_write_their_own_outputs_and_a_dead_one_fails_alone(tmp_path, capsys, own_signals):
    from pipelines.cli import main

    a, b = make_clip(tmp_path / "a.mp4", 12), make_clip(tmp_path / "b.mp4", 8)
    sources = tmp_path / "streams.yaml"
    sources.write_text(f"- {{name: dead, url: '{DEAD}', options: {{reconnect_max_attempts: 1}}}}\n")
    out = tmp_path / "out"
    code = main(["face_detect", "--source", str(a), "--source", f"back={b}", "--sources", str(sources),
                 "--output", f"{out}/{{stream}}.mp4", "--detections", f"{out}/{{stream}}.jsonl", "--stats",
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: stream dead: ") and "127.0.0.1:1" in errors[0]
    assert frames_in(out / "cam0.mp4") == 12 and frames_in(out / "back.mp4") == 8
    for name, count in (("cam0", 12), ("back", 8)):
        lines = jsonl(out / f"{name}.jsonl")
        assert len(lines) == count and {line["stream"] for line in lines} == {name}
        assert [line["frame"] for line in lines] == list(range(count))
    assert not (out / "dead.mp4").exists()
    assert all(f"stream {name}:" in err for name in ("cam0", "back", "dead"))  # a --stats table each


@pytest.mark.slow
def test_every_stream_uses_one_engine_session(tmp_path):
    from calculators.inference.shared_sessions import SESSIONS
    from pipelines.multistream import StreamSet, StreamSpec
    from pipelines.graph import Graph
    from pipelines.resources import find_graph

    def build(spec):
        overrides = [f"source.source={spec.url}", "source.realtime=true", "display.enabled=false"]
        return Graph.from_yaml(find_graph("face_detect"), overrides=overrides)

    clips = [make_clip(tmp_path / f"{i}.mp4", 10) for i in range(3)]
    loads = SESSIONS.loads
    streams = StreamSet(build)
    try:
        for i, clip in enumerate(clips):
            streams.add(StreamSpec(f"cam{i}", str(clip)))
        # Every instance has opened (start() opens every calculator): one model loaded, three users.
        assert SESSIONS.loads == loads + 1
        assert list(SESSIONS.users().values()) == [3]
        assert streams.wait(30)
    finally:
        streams.cancel()
    assert streams.failures() == {}
    assert SESSIONS.users() == {}  # the last stream to close closed the session


@pytest.mark.slow
def test_streams_batch_their_detector_calls_and_get_their_own_detections(tmp_path, capsys, own_signals):
    from pipelines.cli import main

    clip = MEDIA / "astronaut_pan.mp4"
    single = tmp_path / "single.jsonl"
    assert main(["face_detect", "--source", str(clip), "--max-frames", "30", "--detections", str(single),
                 "--no-progress", "--no-display"]) == 0
    capsys.readouterr()
    out = tmp_path / "out"
    # A long timeout: once the three streams run, every call waits for all of them, however loaded the machine.
    code = main(["face_detect", "--source", f"a={clip}", "--source", f"b={clip}", "--source", f"c={clip}",
                 "--max-frames", "30", "--detections", f"{out}/{{stream}}.jsonl", "--no-progress",
                 "--set", "face_detection.max_batch=8", "--set", "face_detection.batch_timeout_ms=300"])
    err = capsys.readouterr().err
    assert code == 0, err
    summary = re.search(r"face_detection_short_range_batch\.onnx: 90 frames in (\d+) calls \(([\d.]+) a call, "
                        r"at most (\d+)\)", err)
    assert summary, err
    assert int(summary.group(1)) < 60 and int(summary.group(3)) == 3
    expected = [line["detections"] for line in jsonl(single)]
    assert expected and any(expected)  # the astronaut's face is found
    for name in "abc":
        assert [line["detections"] for line in jsonl(out / f"{name}.jsonl")] == expected


def test_batching_off_runs_one_frame_per_call(tmp_path, capsys, own_signals):
    from pipelines.cli import main

    clip = make_clip(tmp_path / "a.mp4", 6)
    code = main(["face_detect", "--source", f"a={clip}", "--source", f"b={clip}", "--no-progress",
                 "--detections", f"{tmp_path}/{{stream}}.jsonl", "--set", "face_detection.max_batch=1"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "face_detection_short_range.onnx (session shared with other nodes)" in err  # the fixed model
    assert "_batch.onnx" not in err and "in batches of" not in err


@pytest.mark.slow
def test_landmark_lines_say_which_stream_they_are_from(tmp_path, capsys, own_signals):
    from pipelines.cli import main

    clip = MEDIA / "cup_hands.mp4"
    code = main(["hands", "--source", f"left={clip}", "--source", f"right={clip}", "--max-frames", "3",
                 "--landmarks", f"{tmp_path}/{{stream}}.jsonl", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    for name in ("left", "right"):
        lines = jsonl(tmp_path / f"{name}.jsonl")
        assert [line["stream"] for line in lines] == [name] * 3
        assert list(lines[0]) == ["stream", "frame", "timestamp_us", "width", "height", "objects"]
        assert lines[0]["objects"] and lines[0]["objects"][0]["kind"] == "hand"


@pytest.mark.slow
def test_each_stream_has_its_own_tracker(tmp_path, own_signals):
    from pipelines.cli import main

    code = main(["face_track", "--source", str(MEDIA / "astronaut_pan.mp4"), "--source",
                 str(MEDIA / "grace_hopper_pan.mp4"), "--max-frames", "8", "--detections",
                 f"{tmp_path}/{{stream}}.jsonl", "-q"])
    assert code == 0
    for name in ("cam0", "cam1"):
        ids = {d["track_id"] for line in jsonl(tmp_path / f"{name}.jsonl") for d in line["detections"]}
        assert ids == {1}, f"stream {name}: track ids {ids}; a tracker shared between streams would count on"


@pytest.mark.slow
def test_streams_are_added_and_removed_through_the_api(tmp_path):
    pytest.importorskip("aiohttp", reason="the live page needs framegraph[serve]")
    sys.path.insert(0, str(Path(__file__).parent / "serve"))
    from serve_support import get

    from pipelines.graph import Graph
    from pipelines.multistream import StreamSet, StreamSpec
    from pipelines.resources import find_graph
    from pipelines.serve import ServeOptions, start_server

    clips = tmp_path / "clips"
    first, added = make_clip(clips / "first.mp4", 60, fps=20), make_clip(clips / "added.mp4", 200, fps=20)

    def build(spec):
        return Graph.from_yaml(find_graph("face_detect"), overrides=[
            f"source.source={spec.url}", "source.realtime=true", "display.enabled=false",
            "video_writer.enabled=true", f"video_writer.path={tmp_path}/out/{spec.name}.mp4"])

    streams = StreamSet(build)
    streams.add(StreamSpec("cam0", str(first)))
    server = start_server(streams.handles()["cam0"], ServeOptions(port=0, allow_sources=(str(clips) + "/",)),
                          ["output_video"], stream_set=streams)
    api = server.url + "api/streams"
    try:
        post = lambda body: get(api, method="POST", data=json.dumps(body).encode(),
                                headers={"Content-Type": "application/json"})
        assert post({"name": "cam1", "url": "/etc/passwd"})[0] == 403
        assert post({"name": "cam1", "url": "rtsp://elsewhere/x"})[0] == 403
        status, _, body = post({"name": "cam1", "url": str(added)})
        assert status == 201, body
        assert post({"name": "cam1", "url": str(added)})[0] == 409
        listed = json.loads(get(api)[2])
        assert [(s["name"], s["status"]) for s in listed["streams"]] == [("cam0", "running"), ("cam1", "running")]
        assert {v["stream"] for v in listed["video"]} == {"cam0.output_video", "cam1.output_video"}
        assert {s["stream"] for s in listed["sources"]} == {"cam0", "cam1"}
        time.sleep(0.5)  # some frames of cam1 written
        from prometheus_client.parser import text_string_to_metric_families

        families = {f.name: f for f in text_string_to_metric_families(get(server.url + "metrics")[2].decode())}
        taken = {(m.labels["stream"], m.labels["node"]): m.value
                 for m in families["framegraph_node_packets_in"].samples if m.name.endswith("_total")}
        assert taken[("cam0", "video_writer")] > 0 and taken[("cam1", "video_writer")] > 0  # every stream's nodes
        assert get(api + "/cam1", method="DELETE")[0] == 200
        assert get(api + "/nope", method="DELETE")[0] == 404
        assert [s["name"] for s in json.loads(get(api)[2])["streams"]] == ["cam0"]
        assert streams.wait(30)
    finally:
        server.stop()
        streams.cancel()
    assert streams.failures() == {}
    assert frames_in(tmp_path / "out" / "cam0.mp4") == 60
    assert 0 < frames_in(tmp_path / "out" / "cam1.mp4") < 200  # stopped early, finalized (playable)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_every_stream_and_finalizes_its_output(tmp_path):
    a, b = make_clip(tmp_path / "a.mp4", 400, fps=20), make_clip(tmp_path / "b.mp4", 400, fps=20)
    cmd = [sys.executable, "-m", "pipelines", "face_detect", "--source", str(a), "--source", str(b), "--realtime",
           "--output", f"{tmp_path}/out/{{stream}}.mp4", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all((tmp_path / "out" / f"cam{i}.mp4").exists() for i in (0, 1)):
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    for name in ("cam0", "cam1"):
        assert 0 < frames_in(tmp_path / "out" / f"{name}.mp4") < 400


def test_a_stream_retrying_forever_never_holds_back_the_others(tmp_path):
    from pipelines.graph import Graph
    from pipelines.multistream import StreamSet, StreamSpec
    from pipelines.resources import find_graph

    def build(spec):
        overrides = [f"source.source={spec.url}", "display.enabled=false"]
        overrides += [f"source.{key}={value}" for key, value in spec.options.items()]
        return Graph.from_yaml(find_graph("face_detect"), overrides=overrides)

    streams = StreamSet(build)
    try:
        streams.add(StreamSpec("dead", DEAD, {"reconnect_max_attempts": 0, "reconnect_delay_s": 0.05,
                                              "reconnect_max_delay_s": 0.1}))
        clip = streams.add(StreamSpec("clip", str(make_clip(tmp_path / "a.mp4", 20))))
        assert clip.wait(20)  # ended while the other one keeps retrying
        assert streams.status("clip") == "ended" and streams.status("dead") == "running"
        streams.remove("dead")
        assert streams.wait(20)
    finally:
        streams.cancel()
    assert streams.failures() == {}
    assert [row["name"] for row in streams.describe()] == ["clip"]
