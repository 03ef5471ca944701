"""The engine registry: listing, look-up, duplicates, plugins, and lazy imports."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from calculators.inference.engines import (Engine, engines, get_engine, known_engines, list_engines,
                                           register_engine, unregister_engine)
from calculators.inference.engines.onnxruntime_engine import OnnxRuntimeEngine
from pipelines.errors import RegistryError

ROOT = Path(__file__).resolve().parents[3]
BUILTIN = {  # name -> (import name, distribution, formats)
    "onnxruntime": ("onnxruntime", "onnxruntime", [".onnx", ".ort"]),
    "openvino": ("openvino", "openvino", [".xml", ".onnx"]),
    "litert": ("ai_edge_litert", "ai-edge-litert", [".tflite"]),
}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=[getattr(pytest.mark, n), pytest.mark.skipif(not _installed(m), reason=f"{n} not installed")])
    for n, (m, _, _) in BUILTIN.items()])
def test_list_engines_reports_each_installed_engine_with_its_version(name):
    _, dist, formats = BUILTIN[name]
    row = next(r for r in list_engines() if r["name"] == name)
    assert row["installed"] is True
    assert row["version"] == importlib.metadata.version(dist)
    assert "cpu" in row["devices"]
    assert row["formats"] == formats
    assert row["hint"] == f'pip install "framegraph[{name}]"'
    assert row["error"] == ""
    assert "cpu" in row["device_names"]
    assert row["options"] == [f.name for f in dataclasses.fields(get_engine(name).Options)]


def test_known_engines_and_read_only_view():
    assert {"onnxruntime", "openvino", "litert"} <= set(known_engines())
    view = engines()
    assert isinstance(view["onnxruntime"], OnnxRuntimeEngine)
    with pytest.raises(TypeError):
        view["mine"] = OnnxRuntimeEngine()  # type: ignore[index]


def test_unknown_engine_suggests_the_close_name():
    with pytest.raises(RegistryError, match="unknown engine 'onxruntime'. Did you mean 'onnxruntime'") as info:
        get_engine("onxruntime")
    assert f"Known engines: {', '.join(known_engines())}" in str(info.value)


def test_duplicate_names_are_refused_unless_replaced():
    class OtherOrt(OnnxRuntimeEngine):
        pass

    with pytest.raises(RegistryError, match="engine name 'onnxruntime' is already registered"):
        register_engine(OtherOrt)
    register_engine(OnnxRuntimeEngine)  # the same class again is fine
    try:
        register_engine(OtherOrt, replace=True)
        assert type(get_engine("onnxruntime")) is OtherOrt
    finally:
        register_engine(OnnxRuntimeEngine, replace=True)
    with pytest.raises(TypeError, match="expects an Engine subclass"):
        register_engine(object)  # type: ignore[arg-type]


def test_a_registered_engine_that_is_not_installed_says_so():
    @register_engine
    class AbsentEngine(Engine):
        name = "absent_runtime"
        module = "framegraph_absent_runtime"
        distributions = ("framegraph-absent-runtime",)
        formats = (".absent",)
        install_hint = "pip install framegraph-absent-runtime"

    try:
        row = next(r for r in list_engines() if r["name"] == "absent_runtime")
        assert row == {"name": "absent_runtime", "installed": False, "version": None, "devices": [],
                       "device_names": ["cpu"], "formats": [".absent"], "options": [],
                       "hint": "pip install framegraph-absent-runtime", "error": ""}
    finally:
        unregister_engine("absent_runtime")
    assert "absent_runtime" not in known_engines()


def _run(code: str, **env) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.slow
def test_loading_every_calculator_and_naming_engines_imports_no_runtime():
    out = _run("""
        import json, sys
        from pipelines import registry
        registry.calculators()
        from calculators.inference.engines import known_engines, get_engine
        info = [(n, get_engine(n).is_installed(), get_engine(n).version()) for n in known_engines()]
        heavy = [m for m in ("onnxruntime", "openvino", "ai_edge_litert", "tensorflow", "cv2") if m in sys.modules]
        print(json.dumps({"calculators": sorted(registry.calculators()), "heavy": heavy}))
    """)
    result = json.loads(out.strip().splitlines()[-1])
    assert {"ImageToTensorCalculator", "InferenceCalculator"} <= set(result["calculators"])
    assert result["heavy"] == []


@pytest.mark.onnxruntime
def test_third_party_engine_from_an_entry_point(tmp_path):
    pytest.importorskip("onnxruntime")
    dist = tmp_path / "framegraph_ort_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: framegraph-ort-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[framegraph.engines]\nort_plugin = framegraph_ort_plugin:PluginEngine\n")
    (tmp_path / "framegraph_ort_plugin.py").write_text(textwrap.dedent("""
        from calculators.inference.engines.onnxruntime_engine import OnnxRuntimeEngine

        class PluginEngine(OnnxRuntimeEngine):
            name = "ort_plugin"
    """))
    out = _run("""
        import sys
        from calculators.inference.engines import known_engines, get_engine
        assert "ort_plugin" in known_engines()
        assert "framegraph_ort_plugin" not in sys.modules  # listed by name, imported only when used
        from pipelines.testing import CalculatorRunner
        import numpy as np
        from pipelines.types import Tensors
        runner = CalculatorRunner('''
            calculator: InferenceCalculator
            options: {model: assets/models/face_detection_short_range.onnx, engine: [ort_plugin]}
        ''')
        out = runner.run({"TENSORS": [Tensors((np.zeros((1, 128, 128, 3), np.float32),))]})
        print(type(get_engine("ort_plugin")).__module__, out["TENSORS"][0].payload.names)
    """, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    assert out.strip().splitlines()[-1] == "framegraph_ort_plugin ('regressors', 'classificators')"


@pytest.mark.openvino
@pytest.mark.skipif(not _installed("openvino"), reason="openvino not installed")
def test_openvino_is_loaded_with_its_usage_telemetry_off(tmp_path):
    # Importing OpenVINO sends an event to Google Analytics from a forked process unless the user opted out (no
    # consent file in a fresh home counts as yes). framegraph makes no network calls at run time: the engine
    # imports it with its telemetry stubbed out, and nothing is written to the home folder either.
    out = _run("""
        import json, multiprocessing, sys
        from pathlib import Path
        from calculators.inference.engines import get_engine
        from pipelines.engines import EngineOptions
        session = get_engine("openvino").load(Path("assets/models/face_detection_short_range.onnx"), EngineOptions())
        print(json.dumps({"telemetry": sorted(m for m in sys.modules if m.startswith("openvino_telemetry")),
                          "ovc": sys.modules["openvino.tools.ovc.telemetry_utils"].tm.__name__,
                          "children": len(multiprocessing.active_children())}))
    """, HOME=str(tmp_path), CI="", TF_BUILD="", JENKINS_URL="")
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"telemetry": [], "ovc": "openvino.tools.ovc.telemetry_stub", "children": 0}
    assert not (tmp_path / "intel").exists()
