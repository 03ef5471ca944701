"""Run every benchmark in one go: ``python -m benchmarks``. Each prints ratios against a baseline measured
in the same run; record the figures in docs/benchmarks.md with the machine they ran on."""
import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["overhead.py", "parallel_nodes.py", "process_executor.py", "face_pipeline.py", "pipeline_limit.py",
              "encoders.py", "decode_threads.py", "detect_interval.py", "tracking.py", "engines.py", "batch.py"]

if __name__ == "__main__":
    for name in BENCHMARKS:
        print(f"\n=== benchmarks/{name} ===", flush=True)
        sys.argv = [str(HERE / name)]
        try:
            runpy.run_path(str(HERE / name), run_name="__main__")
        except SystemExit as exc:
            if exc.code:
                raise
