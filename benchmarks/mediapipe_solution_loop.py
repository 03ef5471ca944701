"""MediaPipe 0.10.21's own legacy solution loop, the baseline of benchmarks/solutions.py.

Runs under MediaPipe's side interpreter (NumPy 1; see benchmarks/solutions.py for how to create it), never
imports framegraph. What a user of ``mp.solutions`` writes, as MediaPipe's own examples do: OpenCV reads the
clip (BGR), the solution object with its default options (video mode) processes the RGB frame, the result is
drawn with mediapipe's drawing_utils (landmarks) or OpenCV/NumPy (masks), and PyAV encodes H.264 with libx264 at
framegraph's writer defaults (preset veryfast, crf 23, encoder threads chosen by x264).

    /tmp/mpenv/bin/python benchmarks/mediapipe_solution_loop.py hands CLIP OUT.mp4

Prints one JSON line: {"solution", "frames", "seconds"}, seconds from the first frame read to the file closed
(imports and model loading excluded; the caller times the whole process too).
"""
from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction

import av
import cv2
import mediapipe as mp
import numpy as np

SOLUTIONS = ("hands", "face_mesh", "pose", "selfie_segmentation", "background_blur")
TINT_RGB = (0, 120, 255)  # graphs/selfie_segmentation.yaml's mask_overlay colour and opacity
TINT_OPACITY = 0.5
BLUR_KERNEL = 31  # graphs/background_blur.yaml's blur_kernel


def make_solution(name: str):
    """The solution object (default options) and a function drawing its result on the BGR frame in place or
    returning a new one."""
    s, draw, styles = mp.solutions, mp.solutions.drawing_utils, mp.solutions.drawing_styles
    if name == "hands":
        def render(bgr, result):
            for hand in result.multi_hand_landmarks or ():
                draw.draw_landmarks(bgr, hand, s.hands.HAND_CONNECTIONS,
                                    styles.get_default_hand_landmarks_style(),
                                    styles.get_default_hand_connections_style())
            return bgr
        return s.hands.Hands(), render
    if name == "face_mesh":
        def render(bgr, result):
            for face in result.multi_face_landmarks or ():
                draw.draw_landmarks(bgr, face, s.face_mesh.FACEMESH_TESSELATION, None,
                                    styles.get_default_face_mesh_tesselation_style())
                draw.draw_landmarks(bgr, face, s.face_mesh.FACEMESH_CONTOURS, None,
                                    styles.get_default_face_mesh_contours_style())
            return bgr
        return s.face_mesh.FaceMesh(), render
    if name == "pose":
        def render(bgr, result):
            draw.draw_landmarks(bgr, result.pose_landmarks, s.pose.POSE_CONNECTIONS,
                                landmark_drawing_spec=styles.get_default_pose_landmarks_style())
            return bgr
        return s.pose.Pose(), render
    if name == "selfie_segmentation":
        tint = np.array(TINT_RGB[::-1], np.float32)

        def render(bgr, result):
            alpha = (result.segmentation_mask * TINT_OPACITY)[..., None]
            out = bgr + (tint - bgr) * alpha
            return np.clip(out + 0.5, 0, 255).astype(np.uint8)
        return s.selfie_segmentation.SelfieSegmentation(), render
    if name == "background_blur":
        def render(bgr, result):
            alpha = result.segmentation_mask[..., None]
            blurred = cv2.GaussianBlur(bgr, (BLUR_KERNEL, BLUR_KERNEL), 0)
            out = blurred + (bgr.astype(np.float32) - blurred) * alpha
            return np.clip(out + 0.5, 0, 255).astype(np.uint8)
        return s.selfie_segmentation.SelfieSegmentation(), render
    raise SystemExit(f"unknown solution '{name}'; one of {', '.join(SOLUTIONS)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("solution", choices=SOLUTIONS)
    parser.add_argument("source")
    parser.add_argument("output")
    args = parser.parse_args()
    solution, render = make_solution(args.solution)
    capture = cv2.VideoCapture(args.source)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    container = av.open(args.output, mode="w")
    stream = None
    frames = 0
    start = time.perf_counter()
    with solution:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            rgb.flags.writeable = False  # as MediaPipe's examples: passed by reference
            result = solution.process(rgb)
            out = render(bgr, result)
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height, stream.pix_fmt = out.shape[1], out.shape[0], "yuv420p"
                stream.codec_context.options = {"preset": "veryfast", "crf": "23"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(out, format="bgr24")):
                container.mux(packet)
            frames += 1
    if stream is not None:
        for packet in stream.encode():
            container.mux(packet)
    container.close()
    capture.release()
    print(json.dumps({"solution": args.solution, "frames": frames, "seconds": time.perf_counter() - start}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
