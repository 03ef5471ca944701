"""Which landmarks are joined when drawing, as polylines of landmark indices, by name.

The hand (21 points) and pose (33 points) skeletons follow the landmark layouts of MediaPipe's hand and pose
models; the face mesh tables are in face_mesh_topology.py.
"""
from __future__ import annotations

from .face_mesh_topology import CONTOURS, TRIANGLES

HAND = (
    (0, 1, 2, 3, 4),  # thumb
    (0, 5, 6, 7, 8),  # index finger, from the wrist
    (9, 10, 11, 12),  # middle finger
    (13, 14, 15, 16),  # ring finger
    (0, 17, 18, 19, 20),  # little finger, from the wrist
    (5, 9, 13, 17),  # across the knuckles
)

POSE = (
    (8, 6, 5, 4, 0, 1, 2, 3, 7),  # ears, eyes and nose
    (10, 9),  # mouth
    (11, 12, 24, 23, 11),  # shoulders and hips
    (11, 13, 15, 17, 19, 15, 21),  # left arm and hand
    (12, 14, 16, 18, 20, 16, 22),  # right arm and hand
    (23, 25, 27, 29, 31, 27),  # left leg and foot
    (24, 26, 28, 30, 32, 28),  # right leg and foot
)

FACE_CONTOURS = tuple(chain for name in ("lips", "left_eye", "left_eyebrow", "right_eye", "right_eyebrow",
                                         "face_oval") for chain in CONTOURS[name])
FACE_IRISES = CONTOURS["left_iris"] + CONTOURS["right_iris"]
FACE_TESSELATION = tuple((a, b, c, a) for a, b, c in TRIANGLES)

TABLES: dict[str, tuple[tuple[int, ...], ...]] = {
    "hand": HAND,
    "pose": POSE,
    "face_mesh_tesselation": FACE_TESSELATION,
    "face_mesh_contours": FACE_CONTOURS,
    "face_mesh_irises": FACE_IRISES,
    "none": (),
}
