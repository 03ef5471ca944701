"""Installed from its wheel, framegraph runs from any folder: the graphs, modules, models and clip ship inside.

The wheel is built from an sdist of this checkout (so MANIFEST.in and setup.py are both exercised, and nothing
is built inside the checkout but the egg-info an editable install writes too), with the build requirements of
this environment (`--no-build-isolation`: nothing is downloaded). It is installed into a throwaway virtual
environment that sees this environment's third-party packages but not its editable framegraph, and run from an
empty folder.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

av = pytest.importorskip("av")
pytest.importorskip("onnxruntime")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "assets" / "media" / "astronaut_pan.mp4"
#: The graph library as the wheel must carry it (setup.py's LIBRARY_FILES), relative to the repository root.
LIBRARY = ("graphs/*.yaml", "graphs/modules/*.yaml", "assets/models/*.onnx", "assets/models/*.tflite",
           "assets/models/*.md", "assets/models/*.json", "assets/models/LICENSE", "assets/models/*.txt",
           "assets/media/*.mp4", "assets/media/README.md")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path  # the throwaway environment's scripts folder
    site_packages: Path
    workdir: Path  # empty, outside the repository
    env: dict[str, str]

    def run(self, program: str, *args: str | Path, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / program), *map(str, args)], cwd=self.workdir, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def python(self, code: str) -> subprocess.CompletedProcess:
        return self.run("python", "-c", code, timeout=60)


def _check(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def _build_backend_missing() -> str | None:
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools"
    has_bdist_wheel = importlib.util.find_spec("setuptools.command.bdist_wheel") is not None
    if not has_bdist_wheel and importlib.util.find_spec("wheel") is None:  # setuptools < 70.1 needs `wheel`
        return "wheel"
    return None


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    missing = _build_backend_missing()
    if missing:
        pytest.skip(f"building the wheel offline needs {missing} in this environment: pip install -e '.[dev]'")
    tmp = tmp_path_factory.mktemp("wheel_install")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_NO_INDEX"] = "1"  # never a download, whatever pip's configuration says
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"

    # sdist with the build backend itself (what any frontend calls), then a wheel from it with pip.
    backend = "import sys; from setuptools import build_meta as b; print(b.build_sdist(sys.argv[1]))"
    sdist = _check(subprocess.run([sys.executable, "-c", backend, str(tmp / "sdist")], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=120)).stdout.strip().splitlines()[-1]
    _check(subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-w", str(tmp / "dist"), str(tmp / "sdist" / sdist)],
                          env=env, capture_output=True, text=True, timeout=180))
    (wheel,) = (tmp / "dist").glob("framegraph-*.whl")

    # A bare environment; this environment's pip installs the wheel into it before anything else is visible there.
    venv = tmp / "venv"
    _check(subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], capture_output=True,
                          text=True, timeout=60))
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    _check(subprocess.run([sys.executable, "-m", "pip", "--python", str(bindir / "python"), "install", "--no-deps",
                           "--no-index", str(wheel)], env=env, capture_output=True, text=True, timeout=120))
    site = Path(_check(subprocess.run([str(bindir / "python"), "-c", "import sysconfig; "
                                       "print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
                                      env=env)).stdout.strip())

    # This environment's third-party packages, without framegraph: a folder of links to every entry of its
    # site-packages except framegraph's own, named in a .pth file. A folder named in a .pth is appended to
    # sys.path but its own .pth files are not processed, so the editable finder stays inactive even without the
    # links; they also keep the editable install's dist-info (and its entry points) out of importlib.metadata.
    third_party = tmp / "third_party"
    third_party.mkdir()
    outer = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    for folder in sorted(outer):
        for entry in folder.iterdir():
            name = entry.name.lower()
            if name.startswith(("framegraph", "__editable__")) or name.endswith(".pth"):
                continue
            if not (third_party / entry.name).exists():
                (third_party / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    (site / "zz_third_party.pth").write_text(f"{third_party}\n")

    workdir = tmp / "work"
    workdir.mkdir()
    env["FRAMEGRAPH_CACHE"] = str(tmp / "cache")
    return Installed(wheel, bindir, site, workdir, env)


def _library_files() -> set[str]:
    return {str(p.relative_to(ROOT).as_posix()) for pattern in LIBRARY for p in ROOT.glob(pattern) if p.is_file()}


def test_the_wheel_carries_the_graph_library_and_only_the_two_packages(installed):
    names = zipfile.ZipFile(installed.wheel).namelist()
    data = {n[len("calculators/_data/"):] for n in names if n.startswith("calculators/_data/")}
    assert data == _library_files()
    assert {"graphs/face_detect.yaml", "graphs/modules/face_detection_short_range.yaml",
            "assets/models/face_detection_short_range.onnx", "assets/models/LICENSE",
            "assets/media/astronaut_pan.mp4"} <= data
    dist_info = "-".join(installed.wheel.name.split("-")[:2]) + ".dist-info"
    assert {n.split("/")[0] for n in names} == {"calculators", "pipelines", dist_info}
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".pyo"))]
    assert not [n for n in names if n.split("/")[0] in ("tests", "benchmarks", "scripts", "apps")]


def test_the_installed_packages_and_library_are_the_wheels(installed):
    code = """if True:
        import json, sys
        from importlib import metadata
        import calculators, pipelines
        from calculators import library
        from pipelines.resources import builtin_graphs, find_graph, find_module, module_names
        print(json.dumps({
            "calculators": calculators.__file__, "pipelines": pipelines.__file__, "root": str(library.root()),
            "graph": str(find_graph("face_detect")), "module": str(find_module("face_detection_short_range")),
            "graphs": [g.name for g in builtin_graphs()], "modules": module_names(),
            "dists": [str(d.locate_file("")) for d in metadata.distributions() if d.name == "framegraph"],
            "editable": [repr(f) for f in sys.meta_path if "editable" in repr(f).lower()],
            "yaml": __import__("yaml").__file__,
        }))
    """
    found = json.loads(_check(installed.python(code)).stdout)
    site = installed.site_packages.resolve()
    for key in ("calculators", "pipelines", "root", "graph", "module"):
        assert Path(found[key]).resolve().is_relative_to(site), (key, found[key])
    assert Path(found["root"]).resolve() == site / "calculators" / "_data"
    assert found["graphs"] == sorted(p.stem for p in (ROOT / "graphs").glob("*.yaml"))
    assert found["modules"] == sorted(p.stem for p in (ROOT / "graphs" / "modules").glob("*.yaml"))
    assert [Path(d).resolve() for d in found["dists"]] == [site]  # the checkout's editable framegraph is invisible
    assert found["editable"] == []
    assert not Path(found["yaml"]).resolve().is_relative_to(site)  # third-party packages come from this environment


def test_run_graph_lists_the_builtin_graphs(installed):
    result = _check(installed.run("run-graph", "--list-graphs", timeout=60))
    description = yaml.safe_load((ROOT / "graphs" / "face_detect.yaml").read_text())["description"]
    line = next((line for line in result.stdout.splitlines() if line.split()[:1] == ["face_detect"]), "")
    assert description in line, result.stdout


def test_run_graph_runs_a_builtin_graph_by_name_from_an_empty_folder(installed):
    result = installed.run("run-graph", "face_detect", "--source", CLIP, "--output", "out.mp4",
                           "--detections", "faces.jsonl", "--no-display", "--no-progress")
    _check(result)
    with av.open(str(CLIP)) as source:
        frames = sum(1 for _ in source.decode(video=0))
    with av.open(str(installed.workdir / "out.mp4")) as written:
        assert sum(1 for _ in written.decode(video=0)) == frames
    lines = (installed.workdir / "faces.jsonl").read_text().splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(frames))
