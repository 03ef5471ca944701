import sys
from pathlib import Path

# tests/media.py and friends are plain modules beside the tests.
sys.path.insert(0, str(Path(__file__).resolve().parent))
