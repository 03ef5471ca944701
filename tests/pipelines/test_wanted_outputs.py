"""CalculatorContext.wanted: whether anything reads an output's content, not only its timestamps (Input.timing(),
observers with content=False), and the overlay skipping its drawing when nothing does."""
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from pipelines import Calculator, Graph, Input, Output, register_calculator
from pipelines.types import Frame

SEEN: list[bool] = []


@dataclass
class Item:
    live = False  # a flow limiter lets every one through (as frames of a file)


@register_calculator
class RecordsWantedCalculator(Calculator):
    """Test helper: passes IN to OUT and records whether OUT is wanted."""

    IN = Input[Any]("IN")
    OUT = Output[Any]("OUT")

    def process(self, ctx):
        SEEN.append(ctx.wanted(self.OUT))
        ctx.send(self.OUT, ctx.get(self.IN))


LIMITED = """
inputs: [n]
nodes:
  - calculator: FlowLimiterCalculator
    name: limiter
    inputs: {IMAGE: n, FINISHED: {stream: done, back_edge: true}}
    outputs: {IMAGE: throttled}
  - {calculator: RecordsWantedCalculator, name: work, inputs: {IN: throttled}, outputs: {OUT: done}}
"""


def run(text: str, observe: dict[str, bool] = {}) -> list[bool]:
    SEEN.clear()
    handle = Graph.from_string(text, "t.yaml").start()
    for stream, content in observe.items():
        handle.observe(stream, lambda packet: None, content=content)
    for ts in range(5):
        handle.send("n", Item(), ts)
    handle.close_inputs()
    assert handle.wait(timeout=20)  # raises the graph's first error
    return list(SEEN)


def test_an_output_read_only_by_a_flow_limiters_finished_is_not_wanted():
    assert run(LIMITED) == [False] * 5


def test_a_consumer_that_reads_the_content_makes_it_wanted():
    text = LIMITED + "  - {calculator: PassThroughCalculator, name: reader, inputs: {IN: done}, outputs: {OUT: out}}\n"
    assert run(text) == [True] * 5


@pytest.mark.parametrize("content, wanted", [(True, True), (False, False)])
def test_observers_count_unless_they_read_only_timestamps(content, wanted):
    assert run(LIMITED, {"done": content}) == [wanted] * 5


def test_the_overlay_draws_only_when_its_output_is_looked_at():
    pytest.importorskip("cv2")
    from calculators.render.annotation_overlay import AnnotationOverlayCalculator  # noqa: F401 (registers it)
    from pipelines.types import RenderData

    frame = Frame(np.zeros((48, 64, 3), np.uint8), index=0)
    box = RenderData(boxes=(((0.1, 0.1, 0.5, 0.5), (255, 0, 0), "face"),))
    text = """
inputs: [image, render]
nodes:
  - calculator: FlowLimiterCalculator
    name: limiter
    inputs: {IMAGE: image, FINISHED: {stream: drawn, back_edge: true}}
    outputs: {IMAGE: throttled}
  - {calculator: AnnotationOverlayCalculator, name: overlay, inputs: {IMAGE: throttled, RENDER_DATA: render},
     outputs: {IMAGE: drawn}}
"""
    for content in (False, True):
        got = []
        handle = Graph.from_string(text, "t.yaml").start()
        handle.observe("drawn", lambda p: p is not None and got.append(p.payload), content=content)
        handle.send("image", frame, 0)
        handle.send("render", box, 0)
        handle.close_inputs()
        assert handle.wait(timeout=20)
        (out,) = got
        assert (out is frame) is (not content)  # undrawn: the very frame; drawn: a new one with the box
        assert bool(out.image.any()) is content
