"""Batch runs (``run-graph GRAPH --source DIR --output-dir OUT --jobs N``): names from the inputs, the manifest,
resume, retries, a worker killed mid-file and a run killed or interrupted, all on tiny clips made here."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.batch import Manifest, ManifestRecord, expand_source, fingerprint, plan_batch
from pipelines.batch_driver import default_jobs
from pipelines.batch_store import MANIFEST_NAME, LocalStore, temp_name
from pipelines.cli import main
from tiny_media import make_clip, make_image

av = pytest.importorskip("av")
pytestmark = pytest.mark.onnxruntime
NAMES = {"output": "{stem}.mp4", "detections": "{stem}.jsonl"}


def mixed_folder(root: Path) -> Path:
    make_clip(root / "a.mp4", 8)
    make_clip(root / "sub" / "b.mp4", 12)
    (root / "broken.mp4").write_bytes(b"this is not a video")
    make_image(root / "still.png")
    (root / "notes.txt").write_text("not media: left out of a folder")
    return root


def run_graph(*args, cwd: Path, **popen) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, **popen)


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def manifest(out: Path) -> dict:
    return {r.input: r for r in Manifest(LocalStore(out)).records.values()}


def visible_files(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())


def test_names_keep_sub_folders_and_never_collide(tmp_path):
    src = tmp_path / "in"
    for name in ("a.mp4", "a.mov", "sub/b.mkv", "c.PNG", ".hidden.mp4", "notes.txt", "out/old.mp4"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(b"x")
    found = expand_source(str(src), exclude=src / "out")
    assert [p.relative_to(src).as_posix() for p in found.files] == ["a.mov", "a.mp4", "c.PNG", "sub/b.mkv"]
    items = plan_batch(found, NAMES)
    named = {i.name: sorted(i.outputs.values()) for i in items}
    assert named == {"a.mov": ["a.jsonl", "a.mp4"], "a.mp4": ["a_2.jsonl", "a_2.mp4"],
                     "c.PNG": ["c.jsonl", "c.png"], "sub/b.mkv": ["sub/b.jsonl", "sub/b.mp4"]}
    globbed = expand_source(str(src / "**" / "*.mkv"))
    assert globbed.root == src and [p.name for p in globbed.files] == ["b.mkv"]
    assert temp_name("a.mp4", "x1") == ".a.partial-x1.mp4" and temp_name("s/b.tar.gz", "x") == "s/.b.tar.partial-x.gz"


def test_the_manifest_says_what_is_done(tmp_path):
    clip = make_clip(tmp_path / "in" / "a.mp4", 2)
    out = tmp_path / "out"
    (item,) = plan_batch(expand_source(str(clip.parent)), {"output": "{stem}.mp4"})
    m = Manifest(LocalStore(out))
    print_ = fingerprint("graph", [])
    m.append(ManifestRecord(item.name, item.size, item.mtime_ns, ["a.mp4"], 2, 0.1, "done", fingerprint=print_))
    assert not m.is_done(item, print_), "its output is missing"
    (out / "a.mp4").write_bytes(b"done")
    assert m.is_done(item, print_) and not m.is_done(item, fingerprint("graph", ["x.y=1"]))
    with open(out / MANIFEST_NAME, "a") as f:
        f.write('{"input": "a.mp4", "size": 1, "status": "fa')  # a line cut short by a killed run
    assert Manifest(LocalStore(out)).is_done(item, print_)
    os.utime(clip, ns=(item.mtime_ns + 10**9, item.mtime_ns + 10**9))
    (changed,) = plan_batch(expand_source(str(clip.parent)), {"output": "{stem}.mp4"})
    assert not m.is_done(changed, print_), "the input changed"
    m.append(ManifestRecord(item.name, item.size, item.mtime_ns, [], 0, 0.1, "failed", "boom", fingerprint=print_))
    assert not Manifest(LocalStore(out)).is_done(item, print_)


def test_default_jobs_leave_a_core_per_declared_thread():
    class Config:
        def __init__(self, *threads):
            self.executors = {f"e{i}": type("E", (), {"threads": t})() for i, t in enumerate(threads)}

    cores = len(os.sched_getaffinity(0))
    assert default_jobs(Config(), 100) == cores and default_jobs(Config(1), 1) == 1
    assert default_jobs(Config(2, 2), 100) == max(1, cores // 4)


def test_each_file_decodes_on_its_share_of_the_cores(tmp_path):
    from pipelines.batch import BatchItem
    from pipelines.batch_job import JobSpec, configure
    from pipelines.overrides import parse_override

    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    item = BatchItem(clip, "a.mp4", {"detections": "a.jsonl"})
    graph = str(Path(__file__).resolve().parents[2] / "graphs" / "face_detect.yaml")
    store = LocalStore(tmp_path / "out")

    def source_threads(**spec) -> int:
        config, _, _ = configure(JobSpec(graph, store=store, **spec), item, "t")
        return config.node("source").options.get("threads", 0)

    assert source_threads() == 0  # one job: the decoder's own default, a thread per core
    assert source_threads(decode_threads=1) == 1
    assert source_threads(decode_threads=1, overrides=(parse_override("source.threads=3"),)) == 3


@pytest.mark.parametrize("args, message", [
    (["--jobs", "2"], "give --output-dir"),
    (["--output-dir", "{out}", "--output", "fixed.mp4"], "a name made from the input's"),
    (["--output-dir", "{out}", "--trace", "t.json"], "--trace cannot be used"),
    (["--output-dir", "{out}", "--source", "{tmp}/nothing"], "no such file or folder"),
])
def test_batch_usage_errors(tmp_path, capsys, args, message):
    args = [a.format(out=tmp_path / "out", tmp=tmp_path) for a in args]
    if "--source" not in args:
        args += ["--source", str(make_clip(tmp_path / "a.mp4", 1))]
    assert main(["face_detect", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_mixed_folder_with_two_jobs_then_a_rerun(tmp_path):
    pytest.importorskip("onnxruntime")
    src, out = mixed_folder(tmp_path / "in"), tmp_path / "out"
    proc = run_graph("face_detect", "--source", src, "--output-dir", out, "--jobs", "2", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.mp4" in errors[0] and "not a video or image file" in errors[0]
    assert "retry: broken.mp4 (attempt 1 of 2 failed" in proc.stderr
    assert "3 done, 1 failed, 0 skipped" in proc.stderr
    assert visible_files(out) == ["a.jsonl", "a.mp4", MANIFEST_NAME, "still.jsonl", "still.png", "sub/b.jsonl",
                                  "sub/b.mp4"], "no temporary file left, sub-folders kept"
    assert frames_in(out / "a.mp4") == 8 and frames_in(out / "sub" / "b.mp4") == 12
    assert len((out / "sub" / "b.jsonl").read_text().splitlines()) == 12
    assert av.open(str(out / "still.png")).streams.video[0].width == 64
    records = manifest(out)
    assert {n: (r.status, r.frames, r.attempts) for n, r in records.items()} == {
        "a.mp4": ("done", 8, 1), "sub/b.mp4": ("done", 12, 1), "still.png": ("done", 1, 1),
        "broken.mp4": ("failed", 0, 2)}
    assert records["sub/b.mp4"].outputs == ["sub/b.mp4", "sub/b.jsonl"]
    assert records["a.mp4"].size == (src / "a.mp4").stat().st_size

    make_clip(src / "a.mp4", 5)  # changed: redone; the others are skipped; the broken one is tried again
    again = run_graph("face_detect", "--source", src, "--output-dir", out, "--jobs", "2", "--retries", "0",
                      cwd=tmp_path)
    assert again.returncode == 1, again.stderr[-3000:]
    assert "1 done, 1 failed, 2 skipped" in again.stderr and "retry:" not in again.stderr
    assert frames_in(out / "a.mp4") == 5 and manifest(out)["a.mp4"].frames == 5


def _workers(pid: int) -> list[int]:
    """The batch worker processes of driver `pid` (not multiprocessing's resource tracker)."""
    pids = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def _wait_for(predicate, timeout: float = 30.0, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _temps(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*.partial-*")] if out.exists() else []


@pytest.mark.slow
def test_a_worker_killed_mid_file_is_redone(tmp_path):
    pytest.importorskip("onnxruntime")
    src, out = tmp_path / "in", tmp_path / "out"
    make_clip(src / "a.mp4", 15, fps=25)  # --realtime: 0.6 s, time to kill it in the middle
    make_clip(src / "b.mp4", 15, fps=25)
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "face_detect", "--source", str(src),
                             "--output-dir", str(out), "--jobs", "1", "--realtime"], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    try:
        temp = _wait_for(lambda: [p for p in _temps(out) if p.suffix == ".mp4" and p.stat().st_size], what="a temp")[0]
        (worker,) = _workers(proc.pid)
        os.kill(worker, signal.SIGKILL)
        assert not (out / "a.mp4").exists(), f"{temp.name} is half-written and must not be under its final name"
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "retry: a.mp4 (attempt 1 of 2 failed: the worker process died (killed by signal 9))" in err
    assert frames_in(out / "a.mp4") == 15 and frames_in(out / "b.mp4") == 15 and not _temps(out)
    assert {n: (r.status, r.attempts) for n, r in manifest(out).items()} == {"a.mp4": ("done", 2), "b.mp4": ("done", 1)}


@pytest.mark.slow
def test_interrupted_then_killed_then_resumed(tmp_path):
    pytest.importorskip("onnxruntime")
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a", "b", "c", "d"):
        make_clip(src / f"{name}.mp4", 10, fps=25)
    command = [sys.executable, "-m", "pipelines", "face_detect", "--source", str(src), "--output-dir", str(out),
               "--jobs", "1", "--realtime"]

    def done() -> list[str]:
        return [n for n, r in manifest(out).items() if r.status == "done"] if (out / MANIFEST_NAME).exists() else []

    # Ctrl-C: the file in flight is stopped and removed, exit 130.
    proc = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: done() and _temps(out), what="one file done and the next one started")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err[-3000:]
    assert "run the same command again to resume" in err and not _temps(out)
    first = done()

    # Killed outright (driver and worker): whatever is under a final name is complete.
    proc = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(lambda: len(done()) > len(first) and _temps(out), what="another file done")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    finished = done()
    assert all(frames_in(path) == 10 for path in out.glob("*.mp4"))

    resumed = run_graph(*command[3:], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"{4 - len(finished)} done, 0 failed, {len(finished)} skipped" in resumed.stderr
    assert sorted(p.name for p in out.glob("*.mp4")) == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"] and not _temps(out)
    assert all(frames_in(p) == 10 for p in out.glob("*.mp4"))
    lines = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    assert sorted(r["input"] for r in lines if r["status"] == "done") == ["a.mp4", "b.mp4", "c.mp4", "d.mp4"]
