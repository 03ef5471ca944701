"""Graph libraries: built-in graphs by name from any folder, their descriptions, and their modules."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.resources import builtin_graphs, data_roots, find_graph, find_module, graph_description

ROOT = Path(__file__).resolve().parents[2]


def test_framegraphs_own_library_is_found_through_its_entry_point():
    assert ROOT in data_roots()
    names = [g.name for g in builtin_graphs()]
    assert {"face_detect", "face_detect_full_range", "face_track", "face_blur"} <= set(names)
    assert find_graph("face_detect") == ROOT / "graphs" / "face_detect.yaml"
    assert find_graph("face_detect.yaml") == ROOT / "graphs" / "face_detect.yaml"
    assert find_graph("no_such_graph") is None and find_graph("../face_detect") is None
    assert find_module("face_detection_short_range") == ROOT / "graphs" / "modules" / "face_detection_short_range.yaml"


def test_every_built_in_graph_has_a_one_line_description():
    for g in builtin_graphs():
        assert g.description and "\n" not in g.description, g.path
    assert graph_description(ROOT / "graphs" / "face_detect.yaml") == "BlazeFace short-range face detection with rendering"


def run_graph(*args, cwd):
    return subprocess.run([sys.executable, "-m", "pipelines", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=60, env={**os.environ, "PYTHONPATH": ""})


@pytest.mark.slow
def test_list_graphs_and_a_graph_by_name_from_an_empty_folder(tmp_path):
    listed = run_graph("--list-graphs", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(l for l in listed.stdout.splitlines() if l.startswith("face_detect "))
    assert "BlazeFace short-range face detection with rendering" in line
    for name in ("face_detect", "graphs/face_detect.yaml"):
        ok = run_graph(name, "--validate", cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.startswith(str(ROOT / "graphs" / "face_detect.yaml")) and "OK" in ok.stdout


def test_an_unknown_graph_name_suggests_the_built_in_ones(tmp_path):
    bad = run_graph("face_detetc", cwd=tmp_path)
    assert bad.returncode == 2
    assert "error: face_detetc: no such graph file or built-in graph. Did you mean 'face_detect'?" in bad.stderr
    missing = run_graph("my/graph.yaml", cwd=tmp_path)
    assert missing.returncode == 2 and "my/graph.yaml: graph file not found" in missing.stderr


@pytest.mark.slow
def test_a_users_graph_keeps_its_own_relative_paths(tmp_path):
    (tmp_path / "project").mkdir()
    clip = ROOT / "assets" / "media" / "astronaut_pan.mp4"
    (tmp_path / "project" / "clip.mp4").write_bytes(clip.read_bytes())
    text = (ROOT / "graphs" / "face_detect.yaml").read_text().replace("assets/media/astronaut_pan.mp4", "clip.mp4")
    (tmp_path / "project" / "mine.yaml").write_text(text)
    (tmp_path / "elsewhere").mkdir()
    result = run_graph(tmp_path / "project" / "mine.yaml", "--max-frames", 3, "--no-display", "--no-progress",
                       "--detections", "out.jsonl", cwd=tmp_path / "elsewhere")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "elsewhere" / "out.jsonl").read_text().splitlines()
    assert len(lines) == 3
