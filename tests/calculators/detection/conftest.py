import sys
from pathlib import Path

# tests/conftest.py puts tests/ first on sys.path, where tests/calculators/ (no __init__.py) would make
# `import calculators` a namespace package under bare `pytest`, and the registry would find no built-ins.
# With the repository root anywhere on sys.path the real (regular) package wins.
_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
