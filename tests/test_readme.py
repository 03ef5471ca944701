"""The README's examples work as written: its graph validates from any folder, its calculators run."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def block(after: str, lang: str) -> str:
    return re.search(rf"{re.escape(after)}\n\n```{lang}\n(.*?)```", README, re.S).group(1)


def test_the_first_command_sets_up_and_runs_the_main_job_and_the_second_runs_the_tests():
    setup = block("Set up and run the main job on the bundled sample clip (a fresh machine, Python 3.10+, no camera needed):", "bash")
    assert 'pip install -e ".[dev]"' in setup and "run-graph face_detect --source assets/media/astronaut_pan.mp4" in setup
    assert block("Run the tests:", "bash").strip() == "pytest"
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.strip().splitlines()[-1] == "pytest"


@pytest.mark.onnxruntime
def test_the_readme_graph_validates_from_an_empty_folder(tmp_path):
    pytest.importorskip("onnxruntime")
    graph = tmp_path / "my_graph.yaml"
    graph.write_text(block("## Write a graph", "yaml"))
    (tmp_path / "run").mkdir()
    proc = subprocess.run([sys.executable, "-m", "pipelines", str(graph), "--validate"], capture_output=True,
                          text=True, cwd=tmp_path / "run", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout


def test_the_readme_calculators_run():
    code = block("## Write a calculator", "python")
    # Names of their own, so the test does not clash with calculators other tests register.
    code = code.replace("GrayCalculator(Calculator)", "ReadmeGrayCalculator(Calculator)")
    code = code.replace("def scale(", "def readme_scale(")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    from pipelines.testing import CalculatorRunner

    out = CalculatorRunner("calculator: ReadmeScaleCalculator\noptions: {factor: 3.0}").run({"IN": [1.0, 2.0]})
    assert [p.payload for p in out["OUT"]] == [3.0, 6.0]
    from pipelines.registry import unregister_calculator

    unregister_calculator("ReadmeScaleCalculator")
    unregister_calculator("ReadmeGrayCalculator")
