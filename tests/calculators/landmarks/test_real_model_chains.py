"""The landmark calculators chained as MediaPipe's face mesh and pose graphs chain them, on the real models and the
bundled clips: each ROI rule, the rotated crop, decoding, heatmap refinement, projection and the ROI-warped mask
together. Not a fidelity test against MediaPipe (that needs its 0.10.21 output); it checks that the chain lands
the landmarks and the mask on the face and the person."""
from pathlib import Path

import numpy as np
import pytest

from pipelines import Graph, Packet
from pipelines.types import Frame

ROOT = Path(__file__).resolve().parents[3]
av = pytest.importorskip("av", reason="the clips are decoded with PyAV")
pytest.importorskip("onnxruntime", reason="the models run on ONNX Runtime here")
pytestmark = pytest.mark.slow

FACE_MESH = """
inputs: [image]
outputs: [face_landmarks, face_rects, faces]
nodes:
- calculator: face_detection_short_range
  name: face_detection
  inputs: {IMAGE: image}
  outputs: {DETECTIONS: faces}
- calculator: DetectionsToRectsCalculator
  inputs: {DETECTIONS: faces, IMAGE: image}
  outputs: {NORM_RECTS: raw_rects}
  options: {rotation_vector_start_keypoint_index: 0, rotation_vector_end_keypoint_index: 1, rotation_vector_target_angle_degrees: 0}
- calculator: RectTransformationCalculator
  inputs: {NORM_RECTS: raw_rects, IMAGE: image}
  outputs: {NORM_RECTS: face_rects}
  options: {scale_x: 1.5, scale_y: 1.5, square_long: true}
- calculator: SplitVectorCalculator
  inputs: {IN: face_rects}
  outputs:
    OUT: [face_rect]
- calculator: ImageToTensorCalculator
  inputs: {IMAGE: image, NORM_RECT: face_rect}
  outputs: {TENSORS: t}
  options:
    output_width: 192
    output_height: 192
    keep_aspect_ratio: false
    float_range: [0.0, 1.0]
    border: replicate
    whole_frame_without_rect: false
- calculator: InferenceCalculator
  inputs: {TENSORS: t}
  outputs: {TENSORS: out}
  options:
    model: [assets/models/face_landmark.onnx]
- calculator: TensorsToFloatsCalculator
  inputs: {TENSORS: out}
  outputs: {FLOAT: score}
  options: {tensor_index: 1, activation: sigmoid}
- calculator: ThresholdingCalculator
  inputs: {FLOAT: score}
  outputs: {FLAG: present}
- calculator: GateCalculator
  inputs:
    IN: [out]
    ALLOW: present
  outputs:
    OUT: [gated]
- calculator: TensorsToLandmarksCalculator
  inputs: {TENSORS: gated}
  outputs: {NORM_LANDMARKS: lm_roi}
  options: {num_landmarks: 468, input_image_width: 192, input_image_height: 192}
- calculator: LandmarkProjectionCalculator
  inputs: {NORM_LANDMARKS: lm_roi, NORM_RECT: face_rect}
  outputs: {NORM_LANDMARKS: face_landmarks}
"""

POSE = """
inputs: [image]
outputs: [pose_landmarks, mask, roi]
nodes:
- calculator: ImageToTensorCalculator
  inputs: {IMAGE: image}
  outputs: {TENSORS: dt, LETTERBOX_PADDING: pad}
  options:
    output_width: 224
    output_height: 224
    keep_aspect_ratio: true
    float_range: [-1.0, 1.0]
    border: zero
- calculator: InferenceCalculator
  inputs: {TENSORS: dt}
  outputs: {TENSORS: dout}
  options:
    model: [assets/models/pose_detection.onnx]
- calculator: SsdAnchorsCalculator
  outputs: {ANCHORS: anchors}
  options:
    num_layers: 5
    min_scale: 0.1484375
    max_scale: 0.75
    input_size_width: 224
    input_size_height: 224
    anchor_offset_x: 0.5
    anchor_offset_y: 0.5
    strides: [8, 16, 32, 32, 32]
    aspect_ratios: [1.0]
    fixed_anchor_size: true
- calculator: TensorsToDetectionsCalculator
  inputs: {TENSORS: dout, ANCHORS: anchors}
  outputs: {DETECTIONS: raw}
  options: {num_classes: 1, num_boxes: 2254, num_coords: 12, box_coord_offset: 0, keypoint_coord_offset: 4, num_keypoints: 4,
    num_values_per_keypoint: 2, x_scale: 224.0, y_scale: 224.0, w_scale: 224.0, h_scale: 224.0, reverse_output_order: true,
    sigmoid_score: true, score_clipping_thresh: 100.0, min_score_thresh: 0.5}
- calculator: NonMaxSuppressionCalculator
  inputs: {DETECTIONS: raw}
  outputs: {DETECTIONS: nms}
  options: {min_suppression_threshold: 0.3, overlap_type: INTERSECTION_OVER_UNION, algorithm: WEIGHTED, return_empty_detections: true}
- calculator: DetectionLetterboxRemovalCalculator
  inputs: {DETECTIONS: nms, LETTERBOX_PADDING: pad}
  outputs: {DETECTIONS: dets}
- calculator: AlignmentPointsRectsCalculator
  inputs: {DETECTIONS: dets, IMAGE: image}
  outputs: {NORM_RECT: raw_roi}
  options: {rotation_vector_start_keypoint_index: 0, rotation_vector_end_keypoint_index: 1, rotation_vector_target_angle_degrees: 90}
- calculator: RectTransformationCalculator
  inputs: {NORM_RECT: raw_roi, IMAGE: image}
  outputs: {NORM_RECT: roi}
  options: {scale_x: 1.25, scale_y: 1.25, square_long: true}
- calculator: ImageToTensorCalculator
  inputs: {IMAGE: image, NORM_RECT: roi}
  outputs: {TENSORS: lt, LETTERBOX_PADDING: lpad, MATRIX: matrix}
  options:
    output_width: 256
    output_height: 256
    keep_aspect_ratio: true
    float_range: [0.0, 1.0]
    border: replicate
    whole_frame_without_rect: false
- calculator: InferenceCalculator
  inputs: {TENSORS: lt}
  outputs: {TENSORS: lout}
  options:
    model: [assets/models/pose_landmark_full.onnx]
- calculator: TensorsToLandmarksCalculator
  inputs: {TENSORS: lout}
  outputs: {NORM_LANDMARKS: raw_lm}
  options: {num_landmarks: 39, input_image_width: 256, input_image_height: 256, visibility_activation: sigmoid,
    presence_activation: sigmoid}
- calculator: RefineLandmarksFromHeatmapCalculator
  inputs: {NORM_LANDMARKS: raw_lm, TENSORS: lout}
  outputs: {NORM_LANDMARKS: refined}
  options: {kernel_size: 7, tensor_index: 3}
- calculator: LandmarkLetterboxRemovalCalculator
  inputs: {LANDMARKS: refined, LETTERBOX_PADDING: lpad}
  outputs: {LANDMARKS: in_roi}
- calculator: LandmarkProjectionCalculator
  inputs: {NORM_LANDMARKS: in_roi, NORM_RECT: roi}
  outputs: {NORM_LANDMARKS: all_lm}
- calculator: SplitLandmarksCalculator
  inputs: {IN: all_lm}
  outputs:
    OUT: [pose_landmarks, aux]
  options:
    ranges:
    - [0, 33]
    - [33, 35]
- calculator: TensorsToSegmentationCalculator
  inputs: {TENSORS: lout, IMAGE: image, MATRIX: matrix}
  outputs: {MASK: mask}
  options: {activation: sigmoid, tensor_index: 2}
"""


def _frames(name: str, count: int) -> list[Packet]:
    path = ROOT / "assets" / "media" / name
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    packets = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == count:
                break
            packets.append(Packet(i * 33_333, Frame(frame.to_ndarray(format="rgb24"), index=i)))
    return packets


def test_face_mesh_chain_puts_468_landmarks_on_the_face():
    frames = _frames("grace_hopper_pan.mp4", 10)
    out = Graph.from_string(FACE_MESH, base_dir=ROOT / "graphs").run(
        {"image": frames}, outputs=["face_landmarks", "face_rects", "faces"], timeout=120)
    assert len(out["face_landmarks"]) == len(frames)
    for lm, faces in zip(out["face_landmarks"], out["faces"]):
        xy = lm.payload.xyz[:, :2]
        x1, y1, x2, y2 = faces.payload.xyxy[0]
        assert len(xy) == 468
        # The nose tip (1) inside the detector's face box; the eyes' outer corners (33, 263) level, right of
        # the image's left eye corner.
        assert x1 < xy[1, 0] < x2 and y1 < xy[1, 1] < y2
        assert abs(xy[33, 1] - xy[263, 1]) < 0.03 and xy[33, 0] < xy[263, 0]


def test_pose_chain_finds_the_upper_body_and_masks_the_person():
    frames = _frames("astronaut_pan.mp4", 6)
    out = Graph.from_string(POSE, base_dir=ROOT / "graphs").run(
        {"image": frames}, outputs=["pose_landmarks", "mask", "roi"], timeout=120)
    assert len(out["pose_landmarks"]) == len(frames) and len(out["mask"]) == len(frames)
    for lm, mask in zip(out["pose_landmarks"], out["mask"]):
        landmarks, p = lm.payload, mask.payload.probability
        assert len(landmarks) == 33
        nose, left_shoulder, right_shoulder = landmarks.xyz[0], landmarks.xyz[11], landmarks.xyz[12]
        assert landmarks.visibility[[0, 11, 12]].min() > 0.5
        assert nose[1] < left_shoulder[1] and nose[1] < right_shoulder[1]  # the head above the shoulders
        assert right_shoulder[0] < nose[0] < left_shoulder[0]  # facing the camera: her right on the image's left
        h, w = p.shape
        assert p[int(nose[1] * h), int(nose[0] * w)] > 0.9  # the face is the person
        assert p[: h // 10, : w // 10].mean() < 0.1  # the flag in the top left corner is not
