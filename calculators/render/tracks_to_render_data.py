from dataclasses import dataclass

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import RenderData, Tracks

from .palette import track_color


@register_calculator
class TracksToRenderDataCalculator(Calculator):
    """Draws where each track has been: its recent centres as a polyline in the track's colour, and, with
    `show_lost`, a thin box where a track the detector is missing is predicted to be.

    Ports:
        TRACKS (Tracks, relative) -> RENDER_DATA (RenderData)

    Example node:
        # Short trails behind every confirmed track; pair with DetectionsToRenderDataCalculator for boxes.
        - calculator: TracksToRenderDataCalculator
          inputs: {TRACKS: tracks}
          outputs: {RENDER_DATA: trail_render_data}
          options: {show_lost: true}
    """

    @dataclass(frozen=True)
    class Options:
        show_trails: bool = True
        show_lost: bool = False  # boxes of live tracks not matched at this timestamp, labelled "#id?"
        thickness: float = 2.0

        def __post_init__(self):
            if self.thickness <= 0:
                raise ValueError(f"thickness must be > 0, got {self.thickness}")

    TRACKS = Input[Tracks]("TRACKS")
    RENDER_DATA = Output[RenderData]("RENDER_DATA")

    def process(self, ctx):
        tracks: Tracks = ctx.get(self.TRACKS)
        if not tracks.relative:
            raise ValueError("TRACKS: expected relative coordinates (RenderData is relative), got pixels")
        lines, boxes = [], []
        for i, track_id in enumerate(tracks.track_ids.tolist()):
            if not tracks.confirmed[i]:
                continue
            color = track_color(track_id)
            if self.options.show_trails and tracks.trails and len(tracks.trails[i]) >= 2:
                lines.append((tuple(map(tuple, tracks.trails[i].tolist())), color))
            if self.options.show_lost and not tracks.matched[i]:
                boxes.append((tuple(tracks.xyxy[i].tolist()), color, f"#{track_id}?"))
        ctx.send(self.RENDER_DATA, RenderData(boxes=tuple(boxes), lines=tuple(lines),
                                              extra={"thickness": max(1.0, self.options.thickness / 2)}))
