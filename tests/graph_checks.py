"""Helpers for tests that build a graph from YAML text and look at what validation says."""
import textwrap

import pytest

from pipelines import Graph, GraphValidationError, parse_graph


def check(text: str, **kwargs) -> Graph:
    """The validated graph of `text` (dedented), as if read from g.yaml."""
    return Graph(parse_graph(textwrap.dedent(text), "g.yaml", **kwargs))


def issues_of(text: str) -> list[str]:
    """Every validation fault of `text`, as the CLI prints them."""
    with pytest.raises(GraphValidationError) as info:
        check(text)
    return [str(i) for i in info.value.issues]
