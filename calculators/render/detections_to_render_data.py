from dataclasses import dataclass

from pipelines import Calculator, Input, Output, register_calculator
from pipelines.types import Detections, RenderData

from .palette import track_color

Color = tuple[int, int, int]


def _check_color(name: str, color: Color) -> None:
    if len(color) != 3 or any(not 0 <= c <= 255 for c in color):
        raise ValueError(f"{name} must be three integers 0-255 (R, G, B), got {list(color)}")


@register_calculator
class DetectionsToRenderDataCalculator(Calculator):
    """Turns detections into drawing instructions (MediaPipe's DetectionsToRenderDataCalculator).

    Each detection becomes a box labelled "face 0.93" (label, then the score when `show_score`; "#7 face
    0.93" when Detections.track_ids is set, in the track's own colour) and one point per keypoint. Coordinates stay relative; the
    line thickness travels in `RenderData.extra["thickness"]`. An empty RenderData is sent for empty
    detections, so the overlay's join never waits.

    Ports:
        DETECTIONS (Detections, relative) -> RENDER_DATA (RenderData)

    Example node:
        - calculator: DetectionsToRenderDataCalculator
          inputs: {DETECTIONS: face_detections}
          outputs: {RENDER_DATA: face_render_data}
          options: {color: [0, 255, 0], keypoint_color: [255, 0, 0], thickness: 2}
    """

    @dataclass(frozen=True)
    class Options:
        color: Color = (0, 255, 0)  # RGB of boxes and labels
        keypoint_color: Color = (255, 0, 0)  # RGB of keypoints
        thickness: float = 2.0  # box line width in pixels; keypoint radius scales with it
        show_score: bool = True
        color_by_track: bool = True  # tracked detections: one colour per track id (as its trail)

        def __post_init__(self):
            _check_color("color", self.color)
            _check_color("keypoint_color", self.keypoint_color)
            if self.thickness <= 0:
                raise ValueError(f"thickness must be > 0, got {self.thickness}")

    DETECTIONS = Input[Detections]("DETECTIONS")
    RENDER_DATA = Output[RenderData]("RENDER_DATA")

    def process(self, ctx):
        ctx.send(self.RENDER_DATA, self.render(ctx.get(self.DETECTIONS)))

    def render(self, dets: Detections) -> RenderData:
        o = self.options
        if not dets.relative:
            raise ValueError("DETECTIONS: expected relative coordinates (RenderData is relative), got pixels; "
                             "draw detections before converting them with Detections.to_pixels()")
        color, kp_color = tuple(o.color), tuple(o.keypoint_color)
        boxes = []
        for i, xyxy in enumerate(dets.xyxy.tolist()):
            parts = []
            box_color = color
            if dets.track_ids is not None:
                parts.append(f"#{int(dets.track_ids[i])}")
                if o.color_by_track:
                    box_color = track_color(int(dets.track_ids[i]))
            if dets.labels and dets.labels[i]:
                parts.append(dets.labels[i])
            if o.show_score:
                parts.append(f"{float(dets.scores[i]):.2f}")
            boxes.append((tuple(xyxy), box_color, " ".join(parts)))
        points = tuple(((x, y), kp_color) for x, y in dets.keypoints.reshape(-1, 2).tolist())
        return RenderData(boxes=tuple(boxes), points=points, extra={"thickness": float(o.thickness)})
