"""Dependencies point one way: calculators and apps use the runtime; the runtime never imports or names them.
Every built-in calculator is declared as an entry point, so the runtime finds it like any plugin."""
import ast
import importlib
import pkgutil
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_runtime_imports_no_plugin():
    offenders = []
    for path in sorted((ROOT / "pipelines").glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}:{node.lineno} imports {n}" for n in names
                          if n.split(".")[0] in ("calculators", "apps")]
    assert not offenders, offenders


def test_the_runtime_names_no_calculator_or_engine():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    eps = pyproject["project"]["entry-points"]
    names = set(eps["framegraph.calculators"]) | set(eps["framegraph.engines"])
    found = []
    for path in sorted((ROOT / "pipelines").glob("*.py")):
        code = path.read_text()
        for name in names:
            if re.search(rf"""['"]{re.escape(name)}['"]""", code):
                found.append(f"{path.name} names '{name}'")
    assert not found, found


def test_every_built_in_calculator_is_an_entry_point():
    pytest.importorskip("numpy")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"]["framegraph.calculators"]
    from pipelines.calculator import Calculator
    import calculators

    found = {}
    for info in pkgutil.walk_packages(calculators.__path__, prefix="calculators."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed here
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Calculator) and obj.__module__ == info.name \
                    and not obj.__name__.startswith("_"):
                found[obj.__name__] = f"{info.name}:{obj.__name__}"
    missing = {name: target for name, target in found.items() if declared.get(name) != target}
    assert not missing, f"add to [project.entry-points.\"framegraph.calculators\"]: {missing}"
