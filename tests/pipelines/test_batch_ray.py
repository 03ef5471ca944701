"""``run-graph --ray``: a real 2-node Ray cluster (``ray start``, one CPU each) inside a network namespace that
has only loopback, with token authentication; one node's worker processes are killed mid-job. Then the same
cluster through Ray Client (``ray://``) into ``memory://``, and ``--ray`` alone (a local cluster) into
``file://``."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.batch import Manifest
from pipelines.batch_store import MANIFEST_NAME, LocalStore
from tiny_media import make_clip

pytestmark = [pytest.mark.slow, pytest.mark.onnxruntime]
av = pytest.importorskip("av")

# Runs inside the namespace: the cluster, the driver (run-graph --ray) and the kill; prints what happened.
CLUSTER = r'''
import json, os, secrets, signal, subprocess, sys, tempfile, time
from pathlib import Path

src, out = Path(sys.argv[1]), Path(sys.argv[2])
env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_USAGE_STATS_ENABLED="0")
temp = tempfile.mkdtemp(prefix="fgray", dir="/tmp")  # short: Ray's socket paths live under it
common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]

def ray(*args):
    subprocess.run(["ray", *args], env=env, check=True, capture_output=True, timeout=120)

def task_workers():
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if cmd.startswith(b"ray::_run_on_ray"):
            found.append((int(pid), ppid))
    return found

killed = []
try:
    ray("start", "--head", "--port=6390", "--include-dashboard=false", f"--temp-dir={temp}", *common)
    ray("start", "--address=127.0.0.1:6390", *common)
    driver = subprocess.Popen([sys.executable, "-m", "pipelines", "face_detect", "--source", str(src),
                               "--output-dir", str(out), "--ray", "127.0.0.1:6390", "--jobs", "2", "--realtime",
                               "--threads", "1"],
                              env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not killed:
        temps = [p for p in out.rglob(".*.partial-*") if p.stat().st_size] if out.exists() else []
        workers = task_workers()
        if temps and workers:
            node = workers[0][1]  # one raylet: one node
            for pid, ppid in workers:
                if ppid == node:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        time.sleep(0.02)
    _, err = driver.communicate(timeout=120)
    print(json.dumps({"rc": driver.returncode, "stderr": err, "killed": killed}))
finally:
    subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=60)
    __import__("shutil").rmtree(temp, ignore_errors=True)
'''

# Ray Client into memory:// (a driver in this process: memory:// is only visible here), then --ray alone.
CLIENT = r'''
import io, json, os, secrets, subprocess, sys, tempfile
from pathlib import Path

import av, fsspec

src, out = Path(sys.argv[1]), Path(sys.argv[2])
token = dict(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
os.environ.update(token, RAY_USAGE_STATS_ENABLED="0")
temp = tempfile.mkdtemp(prefix="fgray", dir="/tmp")
common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]

def ray(*args):
    subprocess.run(["ray", *args], check=True, capture_output=True, timeout=120)

report = {}
try:
    ray("start", "--head", "--port=6392", "--ray-client-server-port=10001", "--include-dashboard=false",
        f"--temp-dir={temp}", *common)
    ray("start", "--address=127.0.0.1:6392", *common)
    from pipelines.batch import expand_source, plan_batch
    from pipelines.batch_driver import run_batch
    from pipelines.batch_job import JobSpec
    from pipelines.batch_ray import RayPool
    from pipelines.batch_store import FsspecStore
    from pipelines.resources import find_graph

    store = FsspecStore("memory://ray-out")
    spec = JobSpec(str(find_graph("face_detect")), fingerprint="f", store=store)
    items = plan_batch(expand_source(str(src)), {"output": "{stem}.mp4", "detections": "{stem}.jsonl"})
    pool = RayPool(spec, "ray://127.0.0.1:10001", 2)
    report["client"] = pool.describe()
    summary = run_batch(items, spec, pool, progress=False, say=lambda text: None)
    fs = fsspec.filesystem("memory")
    frames = {}
    for path in fs.find("memory://ray-out"):
        name = path.split("ray-out/", 1)[1]
        if name.endswith(".mp4"):
            with av.open(io.BytesIO(fs.cat_file(path))) as c:
                frames[name] = sum(1 for _ in c.decode(video=0))
        else:
            frames[name] = len(fs.cat_file(path).splitlines())
    report["memory"] = {"done": summary.done, "failed": summary.failed, "files": frames}
    app = subprocess.run([sys.executable, str(Path(sys.argv[3]) / "apps" / "anonymize.py"), str(src), str(src / "sub"),
                          "--out-dir", str(out.parent / "app"),
                          "--ray", "127.0.0.1:6392", "--jobs", "2"], capture_output=True, text=True, timeout=180)
    report["app"] = {"rc": app.returncode, "stderr": app.stderr[-3000:],
                     "files": sorted(p.name for p in (out.parent / "app").iterdir())}
except Exception:
    # The traceback first, then the client servers' own logs: the test shows the tail of stderr.
    __import__("traceback").print_exc()
    for log in sorted(Path(temp).glob("session_latest/logs/ray_client_server_*.*")):
        print(f"--- {log.name}:", log.read_text()[-1000:], file=sys.stderr)
    sys.exit(1)
finally:
    subprocess.run(["ray", "stop", "--force"], capture_output=True, timeout=60)
    __import__("shutil").rmtree(temp, ignore_errors=True)
for key in token:
    os.environ.pop(key)
local = subprocess.run([sys.executable, "-m", "pipelines", "face_detect", "--source", str(src), "--output-dir",
                        f"file://{out}", "--ray", "--no-progress"], capture_output=True, text=True, timeout=180)
report["local"] = {"rc": local.returncode, "stderr": local.stderr[-3000:]}
print(json.dumps(report))
'''


def in_loopback_namespace(script: Path, *args, timeout: float = 300) -> dict:
    """Run `script` in a network namespace of its own with only loopback up; its last stdout line, as JSON."""
    pytest.importorskip("ray")
    pytest.importorskip("onnxruntime")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip for a network namespace with only loopback")
    proc = subprocess.run(["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                           sys.executable, str(script), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_two_node_cluster_on_loopback_with_a_node_s_workers_killed(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a", "b", "c", "sub/d"):
        make_clip(src / f"{name}.mp4", 40, fps=25)  # --realtime: 1.6 s each, time to catch a worker mid-file
    script = tmp_path / "cluster.py"
    script.write_text(CLUSTER)
    result = in_loopback_namespace(script, src, out)
    assert result["killed"], "no worker was caught mid-file"
    assert result["rc"] == 0, result["stderr"][-3000:]
    assert "4 done, 0 failed" in result["stderr"]
    # Two cores per file (the inference thread and --threads 1) on 1-CPU nodes: asked for 1, not left waiting.
    assert "the largest node has 1 CPU: each file asks for 1" in result["stderr"]
    outputs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mp4"))
    assert outputs == ["a.mp4", "b.mp4", "c.mp4", "sub/d.mp4"], "every output once, no temporary file left"
    assert all(frames_in(out / o) == 40 for o in outputs)
    records = Manifest(LocalStore(out)).records
    assert {n: (r.status, r.frames) for n, r in records.items()} == {
        n: ("done", 40) for n in ("a.mp4", "b.mp4", "c.mp4", "sub/d.mp4")}
    assert len((out / MANIFEST_NAME).read_text().splitlines()) == 4, "each file recorded once"


def test_ray_client_into_memory_and_a_local_cluster_into_a_file_url(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_clip(src / "a.mp4", 6)
    make_clip(src / "sub" / "b.mp4", 9)
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    result = in_loopback_namespace(script, src, out, Path(__file__).resolve().parents[2])
    assert "2 nodes, 2 CPUs" in result["client"]
    assert result["memory"] == {"done": 2, "failed": 0, "files": {
        "a.mp4": 6, "a.jsonl": 6, "sub/b.mp4": 9, "sub/b.jsonl": 9, "manifest.jsonl": 2}}
    assert result["app"]["rc"] == 0, result["app"]["stderr"]
    assert result["app"]["files"] == ["a_anonymized.mp4", "b_anonymized.mp4", "manifest.jsonl"]
    assert result["local"]["rc"] == 0, result["local"]["stderr"]
    assert "2 done, 0 failed" in result["local"]["stderr"]
    assert frames_in(out / "sub" / "b.mp4") == 9 and (out / MANIFEST_NAME).is_file()


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


class _FlakyClientRay:
    """Stands in for Ray's module in `init_ray` alone (the retry around it is what is tested): its client proxy fails
    to start a server for the first `failures` connections, as Ray's does now and then on a busy machine."""

    def __init__(self, failures: int):
        self.failures, self.calls, self.shutdowns = failures, [], 0

    def init(self, address=None, **kwargs):
        self.calls.append((address, kwargs))
        if len(self.calls) <= self.failures:
            raise ConnectionAbortedError("Initialization failure from server:\nTraceback (most recent call last):\n"
                                         "RuntimeError: Starting Ray client server failed.\n")

    def shutdown(self):
        self.shutdowns += 1


def test_a_ray_client_connection_whose_server_fails_to_start_is_tried_again(caplog):
    from pipelines.batch_ray import init_ray

    ray = _FlakyClientRay(failures=2)
    init_ray(ray, "ray://127.0.0.1:10001", log_to_driver=False)
    assert [c[0] for c in ray.calls] == ["ray://127.0.0.1:10001"] * 3 and ray.shutdowns == 2
    assert all(c[1] == {"log_to_driver": False} for c in ray.calls)
    assert "failed (RuntimeError: Starting Ray client server failed.); trying again (2 of 3)" in caplog.text

    with pytest.raises(ConnectionAbortedError):  # no more than CLIENT_ATTEMPTS
        init_ray(_FlakyClientRay(failures=3), "ray://127.0.0.1:10001")
    cluster = _FlakyClientRay(failures=1)
    with pytest.raises(ConnectionAbortedError):  # a cluster address (not Ray Client) fails at once, as before
        init_ray(cluster, "127.0.0.1:6379")
    assert len(cluster.calls) == 1
