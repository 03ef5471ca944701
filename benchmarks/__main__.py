"""Run every benchmark in one go: ``python -m benchmarks``. Each prints ratios against a baseline measured
in the same run; record the figures in docs/benchmarks.md with the machine they ran on."""
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["overhead.py", "parallel_nodes.py", "process_executor.py", "face_pipeline.py", "pipeline_limit.py",
              "colour_encodings.py", "frame_conversions.py", "overlay_mesh.py", "encoders.py", "decode_threads.py",
              "detect_interval.py", "tracking.py", "engines.py", "batch.py", "solutions.py", "solution_models.py",
              "streams.py"]


def _skip_reason(name: str) -> str | None:
    """Why a benchmark cannot run here, or None. solutions.py needs MediaPipe's side interpreter (NumPy 1)."""
    if name != "solutions.py":
        return None
    sys.path.insert(0, str(HERE.parent))
    from benchmarks.solutions import default_mediapipe_python, side_interpreter

    path = default_mediapipe_python()
    if side_interpreter(path) is None:
        return (f"MediaPipe's side interpreter {path} is missing (set FRAMEGRAPH_MEDIAPIPE_PYTHON; "
                "benchmarks/solutions.py's docstring says how to create it)")
    return None

if __name__ == "__main__":
    for name in BENCHMARKS:
        print(f"\n=== benchmarks/{name} ===", flush=True)
        reason = _skip_reason(name)
        if reason:
            print(f"skipped: {reason}", flush=True)
            continue
        sys.argv = [str(HERE / name)]
        try:
            runpy.run_path(str(HERE / name), run_name="__main__")
        except SystemExit as exc:
            if exc.code:
                raise
