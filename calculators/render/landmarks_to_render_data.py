from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Landmarks, RenderData

from .connections import TABLES

Color = tuple[int, int, int]


@register_calculator
class LandmarksToRenderDataCalculator(Calculator):
    """Turns landmarks into drawing instructions (MediaPipe's LandmarksToRenderDataCalculator): a point per
    landmark (`render_landmarks`) and the `connections` between them, a built-in table by name (hand, pose,
    face_mesh_tesselation, face_mesh_contours, face_mesh_irises, none) or polylines of landmark indices
    (`connection_polylines`). With `visibility_threshold` (pose), landmarks below it are not drawn, nor any
    segment touching one. `antialias: false` draws the lines and points with OpenCV's LINE_8, as MediaPipe's own
    drawing does: a face mesh tesselation is 2,556 one-pixel segments, and anti-aliasing them costs the overlay 2-4
    times as much. LANDMARKS takes one object's Landmarks or a list of them; an empty RenderData is sent when
    there is nothing to draw, so the overlay never waits.

    Ports:
        LANDMARKS (Landmarks or list of Landmarks, relative) -> RENDER_DATA (RenderData)

    Example node:
        - calculator: LandmarksToRenderDataCalculator
          inputs: {LANDMARKS: hand_landmarks}
          outputs: {RENDER_DATA: hand_render_data}
          options: {connections: hand, landmark_color: [255, 0, 0], connection_color: [0, 255, 0]}
    """

    @dataclass(frozen=True)
    class Options:
        connections: str = "none"
        connection_polylines: tuple[tuple[int, ...], ...] = ()
        landmark_color: Color = (255, 0, 0)
        connection_color: Color = (0, 255, 0)
        thickness: float = 2.0
        render_landmarks: bool = True
        antialias: bool = True
        visibility_threshold: float | None = None

        def __post_init__(self):
            if self.connections not in TABLES:
                raise ValueError(f"connections must be one of {', '.join(TABLES)}, got {self.connections!r}")
            for name in ("landmark_color", "connection_color"):
                color = getattr(self, name)
                if len(color) != 3 or any(not 0 <= c <= 255 for c in color):
                    raise ValueError(f"{name} must be three integers 0-255 (R, G, B), got {list(color)}")
            if self.thickness <= 0:
                raise ValueError(f"thickness must be > 0, got {self.thickness}")

    LANDMARKS = Input[Any]("LANDMARKS")
    RENDER_DATA = Output[RenderData]("RENDER_DATA")

    def open(self, ctx):
        self._polylines = tuple(self.options.connection_polylines) or TABLES[self.options.connections]
        lengths = {len(line) for line in self._polylines}
        # A table of polylines of one length (the tesselation's triangles) is gathered in one indexing.
        self._table = np.array(self._polylines, np.intp) if len(lengths) == 1 and min(lengths) >= 2 else None
        self._extra = {"thickness": float(self.options.thickness), "antialias": bool(self.options.antialias)}

    def process(self, ctx):
        value = ctx.get(self.LANDMARKS)
        objects = [value] if isinstance(value, Landmarks) else [v for v in (value or ()) if isinstance(v, Landmarks)]
        points, lines = [], []
        for landmarks in objects:
            p, l = self.render(landmarks)
            points += p
            lines += l
        ctx.send(self.RENDER_DATA, RenderData(points=tuple(points), lines=tuple(lines), extra=dict(self._extra)))

    def render(self, landmarks: Landmarks) -> tuple[list, list]:
        o = self.options
        if not landmarks.relative:
            raise ValueError("LANDMARKS: expected relative landmarks (RenderData is relative), got pixels")
        xy = landmarks.xyz[:, :2].astype(np.float64).tolist()
        shown = np.ones(len(xy), bool)
        if o.visibility_threshold is not None and landmarks.visibility is not None:
            shown = landmarks.visibility >= o.visibility_threshold
        lines = []
        color = tuple(o.connection_color)
        if self._table is not None and bool(shown.all()) and int(self._table.max()) < len(xy):
            # Every polyline whole: all of them in one gather, each an (L, 2) array of relative points.
            gathered = landmarks.xyz[:, :2].astype(np.float64)[self._table]
            return self._points(xy, shown), [(line, color) for line in gathered]
        for polyline in self._polylines:
            run: list = []
            for i in polyline:  # a hidden or missing landmark breaks the polyline in two
                if i < len(xy) and shown[i]:
                    run.append(tuple(xy[i]))
                    continue
                if len(run) >= 2:
                    lines.append((tuple(run), color))
                run = []
            if len(run) >= 2:
                lines.append((tuple(run), color))
        return self._points(xy, shown), lines

    def _points(self, xy: list, shown: np.ndarray) -> list:
        if not self.options.render_landmarks:
            return []
        dot = tuple(self.options.landmark_color)
        return [(tuple(p), dot) for p, s in zip(xy, shown) if s]
