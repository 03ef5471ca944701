"""One registry mechanism for calculators, engines and graph libraries: names, entry points, replace=True,
lazy loading, and plugins that fail to import reported with their own error."""
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest

from pipelines import Calculator, PluginLoadError, RegistryError
from pipelines.registry import CALCULATORS, Registry, register_calculator, unregister_calculator


class Widget:
    name = "widget"


def test_register_get_and_refuse_a_second_owner_unless_replace():
    reg = Registry("widget", "framegraph.tests.none")
    reg.register(Widget)
    assert reg.get("widget") is Widget and reg.names() == ["widget"]

    class Other:
        name = "widget"

    with pytest.raises(RegistryError, match="widget name 'widget' is already registered by .*Widget; pass replace=True"):
        reg.register(Other)
    reg.register(Other, replace=True)
    assert reg.get("widget") is Other
    reg.register(Other)  # the same object again is fine
    with pytest.raises(RegistryError, match=r"unknown widget 'widgit'. Did you mean 'widget'\?"):
        reg.get("widgit")


def test_make_turns_registered_classes_into_what_get_returns():
    reg = Registry("engine", "framegraph.tests.none", make=lambda cls: cls())
    reg.register(Widget)
    assert isinstance(reg.get("widget"), Widget)


def test_calculators_refuse_non_calculators_and_duplicates():
    with pytest.raises(TypeError, match="expects a Calculator subclass"):
        register_calculator(Widget)

    @register_calculator(name="RegistryTestCalculator")
    class A(Calculator):
        def process(self, ctx):
            pass

    try:
        class B(Calculator):
            def process(self, ctx):
                pass

        with pytest.raises(RegistryError, match="already registered"):
            register_calculator(B, name="RegistryTestCalculator")
        register_calculator(B, name="RegistryTestCalculator", replace=True)
        assert CALCULATORS.get("RegistryTestCalculator") is B
    finally:
        unregister_calculator("RegistryTestCalculator")


def test_built_in_names_are_known_without_importing_them():
    code = ("import sys\nfrom pipelines.registry import CALCULATORS\nnames = CALCULATORS.names()\n"
            "print('InferenceCalculator' in names, 'calculators.inference.inference' in sys.modules, "
            "'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False", "False"]


def test_a_plugin_that_fails_to_import_is_reported_with_its_error_and_entry_point(tmp_path):
    dist = tmp_path / "brokenplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[framegraph.calculators]\nBrokenCalculator = brokenplugin:BrokenCalculator\n")
    (tmp_path / "brokenplugin.py").write_text("import a_module_that_is_not_installed\n")
    graph = tmp_path / "g.yaml"
    graph.write_text("nodes: [{calculator: BrokenCalculator, name: broken}]\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "pipelines", str(graph), "--validate"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert 'node "broken" (BrokenCalculator)' in line
    assert "entry point 'BrokenCalculator = brokenplugin:BrokenCalculator'" in line
    assert "from brokenplugin 1.0" in line
    assert "ModuleNotFoundError: No module named 'a_module_that_is_not_installed'" in line
    assert "Did you mean" not in line


def test_plugin_load_error_is_a_registry_error_and_an_import_error():
    reg = Registry("widget", "framegraph.tests.none")
    assert issubclass(PluginLoadError, RegistryError) and issubclass(PluginLoadError, ImportError)
    with pytest.raises(RegistryError):
        reg.get("nothing")
