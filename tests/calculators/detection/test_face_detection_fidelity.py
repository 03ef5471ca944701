"""The face detection modules against MediaPipe 0.10.21's own detections (tests/data/mediapipe_reference).

Each frame goes through graphs/modules/face_detection_{short,full}_range.yaml (ImageToTensorCalculator,
InferenceCalculator on ONNX Runtime, SsdAnchorsCalculator, TensorsToDetectionsCalculator,
NonMaxSuppressionCalculator, DetectionLetterboxRemovalCalculator). A frame agrees when it has as many faces
as MediaPipe found and each pairs with one of them at IoU >= 0.8; 98% of frames must agree. Mean and min
IoU, the largest keypoint error (pixels) and the largest score difference are printed and recorded.

Frames are decoded with OpenCV and converted BGR -> RGB, as the reference was made. The remaining
differences come from the pixels (another OpenCV/FFmpeg build decoding and resampling) and from ONNX vs
TFLite arithmetic: a candidate box scoring within ~0.005 of min_score_thresh can fall on the other side
and shift a weighted-NMS average by a pixel or two (full range, carphone frame 112).
"""
import json

import numpy as np
import pytest

import media
from metrics import iou
from pipelines import Graph, registry
from pipelines.types import Frame

MEDIA = {"astronaut": media.astronaut_image, "carphone": media.carphone_clip, "astronaut_pan": media.astronaut_pan_clip}
MODELS = ("short_range", "full_range")


def read_frames(path) -> list[np.ndarray]:
    pytest.importorskip("cv2")
    return media.read_rgb_frames(path)


def detect(model: str, images: list[np.ndarray]) -> list:
    graph = Graph.from_string(f"""
        inputs: [image]
        outputs: [detections]
        nodes:
          - calculator: face_detection_{model}
            inputs: {{IMAGE: image}}
            outputs: {{DETECTIONS: detections}}
            options: {{engine: [onnxruntime]}}
    """, base_dir=media.REPO_ROOT)
    out = graph.run({"image": [Frame(img, index=i) for i, img in enumerate(images)]}, outputs=["detections"],
                    timeout=120)
    packets = out["detections"]
    assert [p.timestamp for p in packets] == list(range(len(images))), "one Detections per frame, empty or not"
    return [p.payload.to_pixels(img.shape[1], img.shape[0]) for p, img in zip(packets, images)]


@pytest.mark.slow
@pytest.mark.onnxruntime
@pytest.mark.parametrize("media_name", list(MEDIA))
@pytest.mark.parametrize("model", MODELS)
def test_detections_match_mediapipe(model, media_name, record_property):
    pytest.importorskip("onnxruntime")
    for name in ("ImageToTensorCalculator", "InferenceCalculator"):
        try:
            registry.get_calculator(name)
        except registry.RegistryError:
            pytest.skip(f"{name} is not available here")
    path = media.require(MEDIA[media_name])
    reference = [json.loads(line) for line in media.mediapipe_reference(media_name, model).read_text().splitlines()]
    images = read_frames(path)
    assert len(images) == len(reference)
    ours = detect(model, images)

    agree, ious, kp_err, score_err = 0, [], 0.0, 0.0
    for mine, ref in zip(ours, reference):
        theirs = ref["detections"]
        if len(mine) != len(theirs):
            continue
        frame_ok = True
        for i in range(len(mine)):
            j = max(range(len(theirs)), key=lambda k: iou(mine.xyxy[i], theirs[k]["xyxy"]))
            v = iou(mine.xyxy[i], theirs[j]["xyxy"])
            ious.append(v)
            frame_ok &= v >= 0.8
            kp_err = max(kp_err, float(np.abs(mine.keypoints[i] - np.array(theirs[j]["keypoints"])).max()))
            score_err = max(score_err, abs(float(mine.scores[i]) - theirs[j]["score"]))
        agree += frame_ok
    summary = {"frames": len(reference), "agree": agree, "mean_iou": float(np.mean(ious)) if ious else 0.0,
               "min_iou": float(np.min(ious)) if ious else 0.0, "max_keypoint_error_px": kp_err,
               "max_score_diff": score_err}
    for key, value in summary.items():
        record_property(key, value)
    print(f"\n{model}/{media_name}: {agree}/{len(reference)} frames agree, mean IoU {summary['mean_iou']:.4f}, "
          f"min IoU {summary['min_iou']:.4f}, max keypoint error {kp_err:.2f} px, max score diff {score_err:.4f}")
    assert agree >= 0.98 * len(reference), summary
    assert summary["mean_iou"] >= 0.97, summary
