import os
import sys
import tempfile
from pathlib import Path

# No test process sends OpenVINO's usage telemetry (importing OpenVINO would, from a forked child that then hangs
# pytest's exit): the engine stubs it out itself; this covers anything that imports OpenVINO directly.
sys.modules.setdefault("openvino_telemetry", None)
# Engines that convert models at first use cache the result; tests use a cache of their own.
os.environ.setdefault("FRAMEGRAPH_CACHE", tempfile.mkdtemp(prefix="framegraph-test-cache-"))

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# tests/media.py and friends are plain modules beside the tests.
sys.path.insert(0, str(TESTS))
# tests/calculators/ (no __init__.py) must not shadow the real `calculators` package: with the repository
# root on sys.path too, the regular package wins over the namespace one.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

# A real plugin distribution (dist-info with entry points) that the tests load like any installed plugin.
sys.path.insert(0, str(TESTS / "plugins"))
