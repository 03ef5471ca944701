"""Path options: inputs against the graph file's folder then the graph libraries, never the working directory
by accident; outputs relative to the working directory, their folder creatable."""
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines import (Calculator, Graph, GraphValidationError, InputFile, MediaSource, OutputFile, parse_graph,
                       register_calculator)
from pipelines.config import load_graph
from pipelines.overrides import parse_override
from pipelines.paths import resolve
from pipelines.registry import unregister_calculator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def files_calculator():
    @register_calculator
    class PathsCalculator(Calculator):
        @dataclass(frozen=True)
        class Options:
            model: InputFile = "assets/models/face_detection_short_range.onnx"
            out: OutputFile = "out.jsonl"
            source: MediaSource = "0"

        def process(self, ctx):
            pass

    yield
    unregister_calculator("PathsCalculator")


def options_of(path: Path, overrides=()) -> object:
    return Graph(load_graph(path, list(overrides))).plan.nodes[0].options


def write(folder: Path, text: str, name: str = "g.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))
    return folder / name


def test_input_files_resolve_against_the_graph_folder_then_the_libraries(tmp_path, monkeypatch):
    graph = write(tmp_path / "project", "nodes: [{calculator: PathsCalculator, options: {model: weights.bin}}]")
    (tmp_path / "project" / "weights.bin").write_bytes(b"x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "weights.bin").write_bytes(b"not this one")
    monkeypatch.chdir(elsewhere)
    assert options_of(graph).model == str(tmp_path / "project" / "weights.bin")
    # The graph's default asset path: not beside the graph, so from framegraph's own library.
    graph = write(tmp_path / "project", "nodes: [{calculator: PathsCalculator, options: "
                                        "{model: assets/models/face_detection_short_range.onnx}}]", "g2.yaml")
    assert options_of(graph).model == str(ROOT / "assets/models/face_detection_short_range.onnx")


def test_a_missing_input_file_is_a_validation_error_saying_where_it_looked(tmp_path, monkeypatch):
    graph = write(tmp_path, "nodes: [{calculator: PathsCalculator, options: {model: nowhere.onnx}}]")
    (tmp_path / "cwd").mkdir()
    (tmp_path / "cwd" / "nowhere.onnx").write_bytes(b"x")
    monkeypatch.chdir(tmp_path / "cwd")  # the working directory is not searched for a graph's own paths
    with pytest.raises(GraphValidationError) as info:
        Graph(load_graph(graph))
    message = str(info.value)
    assert "g.yaml:1" in message and 'node "paths"' in message
    assert "option 'model': file nowhere.onnx not found; looked in " + str(tmp_path) in message


def test_command_line_values_are_relative_to_the_working_directory(tmp_path, monkeypatch):
    graph = write(tmp_path / "g", "nodes: [{calculator: PathsCalculator}]")
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.onnx").write_bytes(b"x")
    monkeypatch.chdir(work)
    opts = options_of(graph, [parse_override("paths.model=mine.onnx"), parse_override("paths.source=clip.mp4"),
                              parse_override("paths.out=results/out.jsonl")])
    assert opts.model == str(work / "mine.onnx")
    assert opts.source == str(work / "clip.mp4")  # missing: left for the source to report, with this path
    assert opts.out == str(work / "results" / "out.jsonl")


def test_outputs_are_refused_when_their_folder_cannot_be_created(tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("x")
    graph = write(tmp_path, "nodes: [{calculator: PathsCalculator, options: {out: a_file/sub/out.jsonl}}]")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GraphValidationError, match=r"option 'out': cannot create folder .*a_file/sub for output "
                                                   r"out.jsonl: .*a_file is a file"):
        Graph(load_graph(graph))
    graph = write(tmp_path, "nodes: [{calculator: PathsCalculator, options: {out: .}}]", "g2.yaml")
    with pytest.raises(GraphValidationError, match="is a folder; name a file"):
        Graph(load_graph(graph))


def test_cameras_urls_and_globs_are_sources_too(tmp_path):
    assert resolve(MediaSource, "0", tmp_path) == "0"
    assert resolve(MediaSource, "rtsp://127.0.0.1:8554/cam", tmp_path) == "rtsp://127.0.0.1:8554/cam"
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(b"x")
    assert resolve(MediaSource, "img/*.png", tmp_path) == str(tmp_path / "img/*.png")
    assert resolve(MediaSource, "img", tmp_path) == str(tmp_path / "img")


def test_text_graphs_resolve_against_the_folder_they_are_given(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"x")
    text = "nodes: [{calculator: PathsCalculator, options: {model: w.bin}}]"
    assert Graph(parse_graph(text, base_dir=tmp_path)).plan.nodes[0].options.model == str(tmp_path / "w.bin")
