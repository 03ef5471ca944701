import sys
from pathlib import Path

# tests/media.py and friends are plain modules beside the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))

# A real plugin distribution (dist-info with entry points) that the tests load like any installed plugin.
PLUGINS = Path(__file__).resolve().parent / "plugins"
sys.path.insert(0, str(PLUGINS))
