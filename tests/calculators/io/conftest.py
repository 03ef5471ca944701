import pytest


@pytest.fixture
def run_graph():
    """Run a YAML graph to completion: returns (packets on `output`, problems the calculators reported)."""
    from pipelines import Graph

    def run(text: str, output: str = "video", timeout: float = 60.0):
        graph = Graph.from_string(text)
        handle = graph.start(outputs=[output])
        packets = list(handle.outputs(output))
        assert handle.wait(timeout), f"graph did not finish within {timeout} s"
        return packets, handle.problems

    return run


def source_graph(source, **options) -> str:
    """A graph with one VideoSourceCalculator feeding stream `video`."""
    opts = ", ".join(f"{k}: {v!r}" if isinstance(v, str) else f"{k}: {str(v).lower()}"
                     for k, v in {"source": str(source), **options}.items())
    return f"""
outputs: [video]
nodes:
  - calculator: VideoSourceCalculator
    outputs: {{IMAGE: video}}
    options: {{{opts}}}
"""


@pytest.fixture
def source_yaml():
    return source_graph
