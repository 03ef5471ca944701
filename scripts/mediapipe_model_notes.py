"""Prose of the MediaPipe model cards (scripts/write_mediapipe_model_cards.py fills in the tables).

Per model: what it is, how MediaPipe prepares its input, what each output
means and how MediaPipe decodes it, and which nodes of the decoded solution
graph concern it: (solution, node-name prefixes, calculator names).
"""

from __future__ import annotations

_PALM_OUTPUTS = {
    "regressors": "per anchor: box centre x, y, width, height, then 7 palm keypoints (x, y), in input-tensor "
                  "pixels (divide by 192)",
    "classificators": "palm score **logit** per anchor (MediaPipe: `sigmoid(clip(v, -100, 100))`)",
}
_PALM_DECODING = [
    "Decoded like the face detector's (`TensorsToDetectionsCalculator`, x-first `reverse_output_order`, "
    "anchors of fixed size 1, so `cx = r[0]/192 + ax`, `w = r[2]/192`, keypoint `k_i = r[4+2i]/192 + a`), "
    "then weighted NMS, then the letterbox is removed. The hand ROI is the detection box rotated so that the "
    "line from keypoint 0 (wrist centre) to keypoint 2 (middle finger base) points up (target angle 90 degrees), "
    "scaled 2.6x, shifted by -0.5 of its height towards the fingers and made square on its long side "
    "(the options below).",
]
_HAND_OUTPUTS = {
    "landmarks": "21 landmarks x (x, y, z) in input-tensor pixels; z is relative depth with the wrist as origin, "
                 "in the same units as x",
    "hand_flag": "hand presence, a probability already (the graph thresholds it at 0.5, "
                 "`min_tracking_confidence`)",
    "handedness": "probability that the hand is a **left** hand (`handedness.txt` line 0 `Left`; `Right` scores "
                  "1 - p). MediaPipe assumes a mirrored (selfie) image",
    "world_landmarks": "21 landmarks x (x, y, z) in metres, origin at the hand's approximate geometric centre; "
                       "the graph rotates them by the ROI's rotation (`WorldLandmarkProjectionCalculator`)",
}
_HAND_DECODING = [
    "`TensorsToLandmarksCalculator` divides x, y by 224 and z by 224 and by `normalize_z` 0.4, then the "
    "landmarks are taken out of the letterbox and projected through the rotated ROI back to the image. The "
    "next frame's ROI comes from the landmarks (`HandLandmarksToRectCalculator`: a box around the palm "
    "landmarks rotated so that the wrist-to-finger-bases direction points up, then scale 2.0, shift -0.1, "
    "square long side, the options below).",
]
_SELFIE_INPUT = ("MediaPipe stretches the whole frame to the tensor (`keep_aspect_ratio: false`), no letterbox; "
                 "bilinear resampling.")

NOTES = {
    "palm_detection_full": {
        "title": "Palm detector (full)",
        "summary": "MediaPipe Hands' palm detector, full model (`model_complexity: 1`, the default). Finds palms "
                   "in the whole frame; the hand landmark model then runs on a rotated ROI around each palm.",
        "input": "The whole frame letterboxed (aspect kept, centred, `BORDER_ZERO`, so the padding is 0.0), "
                 "bilinear.",
        "outputs": _PALM_OUTPUTS, "decoding": _PALM_DECODING,
        "graph": ("hands", ("palmdetectioncpu__", "palmdetectiondetectiontoroi__"), ()),
    },
    "palm_detection_lite": {
        "title": "Palm detector (lite)",
        "summary": "MediaPipe Hands' palm detector, lite model (`model_complexity: 0`). Same interface, anchors "
                   "and decoding as the full model.",
        "input": "The whole frame letterboxed (aspect kept, centred, `BORDER_ZERO`, so the padding is 0.0), "
                 "bilinear.",
        "outputs": _PALM_OUTPUTS, "decoding": _PALM_DECODING,
        "graph": ("hands", ("palmdetectioncpu__", "palmdetectiondetectiontoroi__"), ()),
    },
    "hand_landmark_full": {
        "title": "Hand landmarks (full)",
        "summary": "MediaPipe Hands' 21-point hand landmark model, full (`model_complexity: 1`, the default), "
                   "with hand presence and handedness.",
        "extra_files": ["handedness.txt"],
        "source_notes": ["`handedness.txt` (`Left`, `Right`) is the label map of the handedness output, "
                         "copied from `mediapipe/modules/hand_landmark/handedness.txt`."],
        "input": "A 224x224 crop of the rotated hand ROI (`ImageToTensorCalculator` with `NORM_RECT`, aspect "
                 "kept; the ROI is square, so no padding in practice), bilinear.",
        "outputs": _HAND_OUTPUTS, "decoding": _HAND_DECODING,
        "graph": ("hands", ("handlandmarkcpu__", "handlandmarklandmarkstoroi__"),
                  ("AssociationNormRectCalculator",)),
    },
    "hand_landmark_lite": {
        "title": "Hand landmarks (lite)",
        "summary": "MediaPipe Hands' 21-point hand landmark model, lite (`model_complexity: 0`). Same interface "
                   "as the full model.",
        "extra_files": ["handedness.txt"],
        "input": "A 224x224 crop of the rotated hand ROI (`ImageToTensorCalculator` with `NORM_RECT`, aspect "
                 "kept), bilinear.",
        "outputs": _HAND_OUTPUTS, "decoding": _HAND_DECODING,
        "graph": ("hands", ("handlandmarkcpu__", "handlandmarklandmarkstoroi__"),
                  ("AssociationNormRectCalculator",)),
    },
    "pose_detection": {
        "title": "Pose detector (BlazePose)",
        "summary": "MediaPipe Pose's person detector. It finds the body's centre and scale; it runs only while "
                   "no pose is tracked from the previous frame.",
        "source_notes": ["Most 1x1 convolution weights are sparse fp16 tensors expanded by `DENSIFY`; the ONNX "
                         "file stores them dense fp32, hence its size."],
        "input": "The whole frame letterboxed (aspect kept, centred, `BORDER_ZERO`: the border is black before "
                 "the range transform, so **the padding is -1.0**), bilinear.",
        "outputs": {
            "regressors": "per anchor: box centre x, y, width, height, then 4 keypoints (x, y), in input-tensor "
                          "pixels (divide by 224). Keypoints 0 and 1 give the body's centre (between the hips), "
                          "its scale and its rotation",
            "classificators": "person score **logit** per anchor",
        },
        "decoding": ["Decoded like the face detector's (x-first, fixed-size anchors, /224), weighted NMS, "
                     "letterbox removed; only the first detection is used. The ROI "
                     "(`AlignmentPointsRectsCalculator`) is a square centred on keypoint 0 with side "
                     "2 x |k1 - k0|, rotated so that k0 -> k1 points up (target 90 degrees), then scaled 1.25."],
        "graph": ("pose", ("posedetectioncpu__", "posedetectiontoroi__"), ()),
    },
    "pose_landmark_full": {
        "title": "Pose landmarks (full, model_complexity 1)",
        "summary": "MediaPipe Pose's 33-point body landmark model with segmentation. Only the full model "
                   "(`model_complexity: 1`, the default) is in the mediapipe wheel, and in any PyPI package: "
                   "MediaPipe downloads `pose_landmark_lite.tflite` (0) and `pose_landmark_heavy.tflite` (2) "
                   "at run time when they are asked for. framegraph therefore supports complexity 1 only.",
        "input": "A 256x256 crop of the rotated pose ROI (`ImageToTensorCalculator` with `NORM_RECT`, aspect "
                 "kept; the ROI is square), bilinear.",
        "outputs": {
            "landmarks": "39 landmarks x (x, y, z, visibility, presence): x, y, z in input-tensor pixels; "
                         "visibility and presence are logits (the graph applies a sigmoid). 0-32 are the pose "
                         "landmarks, 33-34 the auxiliary points that give the next frame's ROI, the rest unused",
            "pose_flag": "pose presence, a probability already (thresholded at 0.5)",
            "segmentation": "person segmentation **logits** for the 256x256 crop (sigmoid, then warped back "
                            "to the image through the ROI)",
            "heatmap": "per-landmark heatmaps (64x64, 39 channels) used to refine x, y "
                       "(`RefineLandmarksFromHeatmapCalculator`, kernel 7)",
            "world_landmarks": "39 landmarks x (x, y, z) in metres, origin between the hips",
        },
        "decoding": ["Landmarks: x, y divided by 256, z by 256 (scaled like x); visibility/presence through a "
                     "sigmoid; then letterbox removal and projection through the ROI. With `smooth_landmarks` "
                     "(the default) the landmarks pass a one-euro filter and the visibilities a low-pass filter, "
                     "and the mask is blended with the previous one (`combine_with_previous_ratio` below). The "
                     "next frame's ROI comes from the auxiliary landmarks 33-34 like the detector's keypoints."],
        "graph": ("pose", ("poselandmarkbyroicpu__", "poselandmarkstoroi__", "poselandmarkfiltering__",
                           "posesegmentationfiltering__"), ()),
    },
    "face_landmark": {
        "title": "Face mesh (468 landmarks)",
        "summary": "MediaPipe Face Mesh's 468-point face landmark model. The wheel has two face landmark models: "
                   "this one, which the legacy `FaceMesh` solution uses by default (`refine_landmarks=False`, "
                   "side packet `with_attention: false`), and `face_landmark_with_attention.tflite` (478 points "
                   "with irises, `refine_landmarks=True`), which needs three more MediaPipe custom operators and "
                   "is not shipped here.",
        "input": "A 192x192 crop of the rotated face ROI, stretched (`keep_aspect_ratio: false`; the ROI is "
                 "square), bilinear; outside the image MediaPipe replicates the border (`BORDER_UNSPECIFIED`).",
        "outputs": {
            "landmarks": "468 landmarks x (x, y, z) in input-tensor pixels; z relative depth, scaled like x",
            "face_flag": "face presence **logit** (the graph applies a sigmoid and thresholds at 0.5)",
        },
        "decoding": ["`TensorsToLandmarksCalculator` divides x, y, z by 192, then the landmarks are projected "
                     "through the rotated ROI. The next ROI: the landmarks' bounding box rotated so that landmark "
                     "33 -> 263 (the eye corners) is horizontal, scaled 1.5, square long side. The first ROI "
                     "comes from the short-range face detector (see `face_detection_short_range.md`)."],
        "graph": ("face_mesh", ("facelandmarkcpu__", "facedetectionfrontdetectiontoroi__",
                                "facelandmarklandmarkstoroi__"), ("AssociationNormRectCalculator",)),
    },
    "iris_landmark": {
        "title": "Iris landmarks",
        "summary": "MediaPipe Iris: 71 eye contour and brow points and 5 iris points of one eye. It is in the "
                   "wheel but no legacy Python solution uses it (the iris graphs are not in the wheel, and "
                   "`IrisLandmarkCpu` is not registered in its binary).",
        "input": "A 64x64 crop of the eye ROI, aspect kept (`ImageTransformationCalculator` `scale_mode: FIT`), "
                 "`BORDER_REPLICATE`. The model knows left eyes only: MediaPipe flips a right eye's crop "
                 "horizontally and flips the landmarks back.",
        "outputs": {
            "eye_contours_and_brows": "71 landmarks x (x, y, z) in input-tensor pixels",
            "iris": "5 landmarks x (x, y, z) in input-tensor pixels: iris centre, then 4 points on its rim",
        },
        "graph_note": "No graph in the wheel holds this model. From MediaPipe's source "
                      "(`mediapipe/modules/iris_landmark/iris_landmark_cpu.pbtxt`): crop with "
                      "`BORDER_REPLICATE`, resize to 64x64 with `scale_mode: FIT`, `zero_center: false` "
                      "(values in [0, 1]), landmarks divided by 64 (71 and 5 of them), letterbox removal, "
                      "projection through the eye ROI.",
    },
    "selfie_segmentation": {
        "title": "Selfie segmentation (general, 256x256)",
        "summary": "MediaPipe Selfie Segmentation, general model (`model_selection: 0`, the default): a person "
                   "mask for the whole frame.",
        "source_notes": ["Its last layer is MediaPipe's custom operator `Convolution2DTransposeBias`, which "
                         "LiteRT runs through XNNPACK only. Its kernel equals its stride (2x2, stride 2), so the converter "
                         "writes it as a 1x1 `Conv` to 4x the channels followed by `DepthToSpace` (the same sums; "
                         "TVM cannot run `ConvTranspose`)."],
        "input": _SELFIE_INPUT,
        "outputs": {"segmentation": "person probability per pixel (the model ends in a sigmoid), resized to "
                                    "the frame by `TensorsToSegmentationCalculator` (`activation: NONE`)"},
        "graph": ("selfie_segmentation", ("switchcontainer__ImageToTensorCalculator_1",),
                  ("TensorsToSegmentationCalculator",)),
    },
    "selfie_segmentation_landscape": {
        "title": "Selfie segmentation (landscape, 256x144)",
        "summary": "MediaPipe Selfie Segmentation, landscape model (`model_selection: 1`), faster and made for "
                   "16:9 frames.",
        "source_notes": ["Its last layer is MediaPipe's custom operator `Convolution2DTransposeBias`, which "
                         "LiteRT runs through XNNPACK only. Its kernel equals its stride (2x2, stride 2), so the converter "
                         "writes it as a 1x1 `Conv` to 4x the channels followed by `DepthToSpace` (the same sums; "
                         "TVM cannot run `ConvTranspose`)."],
        "input": _SELFIE_INPUT,
        "outputs": {"segmentation": "person probability per pixel (the model ends in a sigmoid), resized to "
                                    "the frame by `TensorsToSegmentationCalculator` (`activation: NONE`)"},
        "graph": ("selfie_segmentation", ("switchcontainer__ImageToTensorCalculator_2",),
                  ("TensorsToSegmentationCalculator",)),
    },
}
