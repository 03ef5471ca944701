"""Batch outputs in a folder or behind an fsspec URL (pipelines/batch_store.py): a file appears under its final
name only when complete, the manifest round-trips, and whole batches write to ``file://`` and ``memory://``."""
import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.batch import Manifest, ManifestRecord, expand_source, fingerprint, plan_batch
from pipelines.batch_store import MANIFEST_NAME, FsspecStore, LocalStore, open_store
from pipelines.errors import GraphConfigError
from tiny_media import make_clip

fsspec = pytest.importorskip("fsspec")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def memory_url(request):
    url = f"memory://fg-{request.node.name}-[x]"  # a glob character in the path: never expanded
    yield url
    fs = fsspec.filesystem("memory")
    for path in fs.find(url):
        fs.rm_file(path)


def test_open_store_tells_a_folder_from_a_url(tmp_path):
    assert isinstance(open_store(tmp_path), LocalStore)
    assert isinstance(open_store("memory://x"), FsspecStore)
    file_store = open_store(f"file://{tmp_path}/out")
    assert file_store.shared and file_store.local_root() == tmp_path / "out"
    assert not open_store("memory://x").shared, "memory:// lives in one process"
    with pytest.raises(GraphConfigError, match="nosuchproto://x: .*"):
        open_store("nosuchproto://x").exists("a")


@pytest.mark.parametrize("kind", ["local", "memory", "file"])
def test_a_store_commits_whole_files_and_keeps_the_manifest(kind, tmp_path, memory_url):
    store = {"local": lambda: LocalStore(tmp_path / "out"), "memory": lambda: FsspecStore(memory_url),
             "file": lambda: FsspecStore(f"file://{tmp_path}/out")}[kind]()
    staged = store.stage("sub/a.mp4", "t1")
    staged.write_bytes(b"video")
    assert not store.exists("sub/a.mp4"), "nothing under the final name until it is committed"
    store.commit(staged, "sub/a.mp4", "t1")
    assert store.exists("sub/a.mp4") and not staged.exists()
    store.store_bytes(b"lines", "sub/a.jsonl", "t2")
    assert store.exists("sub/a.jsonl")
    # What a killed attempt leaves under a temporary name goes; the final file stays.
    store.store_bytes(b"half", "sub/.a.partial-dead.mp4", "t3")
    store.remove_temps("sub/a.mp4")
    assert not store.exists("sub/.a.partial-dead.mp4") and store.exists("sub/a.mp4")

    clip = tmp_path / "in" / "a.mp4"
    clip.parent.mkdir()
    clip.write_bytes(b"an input: only its size and modification time matter here")
    (item,) = plan_batch(expand_source(str(clip.parent)), {"output": "{stem}.mp4"})
    print_ = fingerprint("g")
    manifest = Manifest(store)
    manifest.append(ManifestRecord(item.name, item.size, item.mtime_ns, ["a.mp4"], 2, 0.1, "done",
                                   fingerprint=print_))
    assert not Manifest(store).is_done(item, print_), "its output is missing"
    store.store_bytes(b"v", "a.mp4", "t4")
    manifest.append(ManifestRecord("other.mp4", 1, 1, [], 0, 0.0, "failed", "boom", fingerprint=print_))
    again = Manifest(store)
    assert again.is_done(item, print_) and again.records["other.mp4"].error == "boom"
    assert len(store.read_text(MANIFEST_NAME).splitlines()) == 2
    store.discard()


def test_a_url_store_travels_to_workers_without_its_filesystem(memory_url):
    store = FsspecStore(memory_url)
    store.exists("x")  # opens the filesystem here
    copy = pickle.loads(pickle.dumps(store))
    assert copy.url == memory_url and copy._fs is None


def _frames(data: bytes) -> int:
    import av

    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.slow
@pytest.mark.onnxruntime
def test_two_local_jobs_into_memory(tmp_path, memory_url):
    """Workers cannot see the driver's memory://: they send the finished files back and the driver stores them."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("av")
    from pipelines.batch_driver import run_batch
    from pipelines.batch_job import JobSpec
    from pipelines.batch_local import LocalPool
    from pipelines.resources import find_graph

    src = tmp_path / "in"
    make_clip(src / "a.mp4", 6)
    make_clip(src / "sub" / "b.mp4", 9)
    store = FsspecStore(memory_url)
    items = plan_batch(expand_source(str(src)), {"output": "{stem}.mp4", "detections": "{stem}.jsonl"})
    spec = JobSpec(str(find_graph("face_detect")), fingerprint="f", store=store)
    summary = run_batch(items, spec, LocalPool(spec, 2), progress=False, say=lambda text: None)
    assert (summary.done, summary.failed) == (2, 0)
    fs = fsspec.filesystem("memory")
    root = memory_url.partition("://")[2]
    names = sorted(p.split(root, 1)[1].lstrip("/") for p in fs.find(memory_url))
    assert names == ["a.jsonl", "a.mp4", MANIFEST_NAME, "sub/b.jsonl", "sub/b.mp4"], "no temporary file left"
    assert _frames(fs.cat_file(f"{memory_url}/sub/b.mp4")) == 9
    assert len(fs.cat_file(f"{memory_url}/a.jsonl").splitlines()) == 6
    records = Manifest(store).records
    assert {n: (r.status, r.frames) for n, r in records.items()} == {"a.mp4": ("done", 6), "sub/b.mp4": ("done", 9)}
    again = run_batch(items, spec, LocalPool(spec, 2), progress=False, say=lambda text: None)
    assert (again.done, again.skipped) == (0, 2), "a rerun reads the manifest back from memory://"


@pytest.mark.slow
@pytest.mark.onnxruntime
def test_the_command_line_writes_to_a_file_url_and_resumes(tmp_path):
    pytest.importorskip("onnxruntime")
    av = pytest.importorskip("av")
    src, out = tmp_path / "in", tmp_path / "out"
    make_clip(src / "a.mp4", 5)
    make_clip(src / "b.mp4", 7)
    command = [sys.executable, "-m", "pipelines", "face_detect", "--source", str(src), "--output-dir",
               f"file://{out}", "--jobs", "2", "--no-progress"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 done, 0 failed" in proc.stderr and f"manifest: file://{out}/{MANIFEST_NAME}" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jsonl", "a.mp4", "b.jsonl", "b.mp4", MANIFEST_NAME]
    with av.open(str(out / "b.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 7
    lines = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    assert sorted(r["input"] for r in lines) == ["a.mp4", "b.mp4"]
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "0 done, 0 failed, 2 skipped" in again.stderr, again.stderr[-2000:]
