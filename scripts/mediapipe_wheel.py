"""Read pinned files out of the mediapipe==0.10.21 wheel (standard library only).

Shared by scripts/convert_mediapipe_models.py (models, any Python with onnx)
and scripts/decode_mediapipe_graphs.py (graphs, needs mediapipe itself).
The wheel is read as a zip, not as an installed package, so the copy does not
depend on which environment runs it.  Get it with

    pip download --no-deps mediapipe==0.10.21 -d /tmp/mpwheel \\
        --python-version 3.11 --platform manylinux_2_28_x86_64 --only-binary=:all:

Every file read is checked twice: against the wheel's own RECORD (the zip is
intact) and against the sha256 pinned here (it is the wheel the model cards
describe; another build or version would silently change the assets).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

MEDIAPIPE_VERSION = "0.10.21"
WHEEL_NAME = "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl"
DEFAULT_WHEEL = Path("/tmp/mpwheel") / WHEEL_NAME
DIST_INFO = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info"

PINNED_SHA256 = {
    "mediapipe/modules/palm_detection/palm_detection_full.tflite":
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    "mediapipe/modules/palm_detection/palm_detection_lite.tflite":
        "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
    "mediapipe/modules/hand_landmark/hand_landmark_full.tflite":
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite":
        "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
    "mediapipe/modules/hand_landmark/handedness.txt":
        "3b82f0246870fec456c8632d455a4e1d5648d2836a7a513a271781144f525916",
    "mediapipe/modules/pose_detection/pose_detection.tflite":
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    "mediapipe/modules/pose_landmark/pose_landmark_full.tflite":
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
    "mediapipe/modules/face_landmark/face_landmark.tflite":
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite":
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite":
        "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
    "mediapipe/modules/iris_landmark/iris_landmark.tflite":
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
    "mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb":
        "942ad4e6b3ecd1903fd2743ad2255a341854de975ef9c90418a4c7b64f0b4425",
    "mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb":
        "90ddc717625a3c1aedfdca124212a36ce595cdbbe46513fd93adca5202d8ff21",
    "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb":
        "fa3c092da27d031d54ddd61a29b0e3dd521d53f55fa8898cb0f2b64d79cd6573",
    "mediapipe/modules/selfie_segmentation/selfie_segmentation_cpu.binarypb":
        "df9f291eadc2ad77a4a0fabd83d4f2c0c2b4d8626c8f44fb0d14efc2fc81f46d",
    "mediapipe/python/solutions/hands.py":
        "4eea13e0f63eae5cf2dc21448ea78df38f4c90a2a36f43f1db8d8797f788b51a",
    "mediapipe/python/solutions/pose.py":
        "b9eaf5a616c4176688d34290651a771aa58ad372faf0f55a5352dc9b2f4b155e",
    "mediapipe/python/solutions/face_mesh.py":
        "81473ff2c9f1f04359d8bd96eaa70c6d7839d3706f2867434393266855696187",
    "mediapipe/python/solutions/selfie_segmentation.py":
        "600a1a70d667fc90f7b3955806301b3a8a51e174213a65a32089997c7d292b26",
    f"{DIST_INFO}/LICENSE":
        "8707eef0533987efc5b155d64761eeb6e20793f50b9bd1a68dad1cf4719d0ed8",
}


class WheelError(RuntimeError):
    pass


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class MediapipeWheel:
    """The pinned files of one mediapipe wheel, verified on every read."""

    def __init__(self, path: Path = DEFAULT_WHEEL):
        if not path.is_file():
            raise WheelError(f"{path}: not found; download it with "
                             f"pip download --no-deps mediapipe=={MEDIAPIPE_VERSION} (see {__file__})")
        self.path = path
        self.zip = zipfile.ZipFile(path)
        self.record = {}
        for line in self.zip.read(f"{DIST_INFO}/RECORD").decode().splitlines():
            name, digest, _size = line.rsplit(",", 2)
            if digest.startswith("sha256="):
                raw = base64.urlsafe_b64decode(digest[7:] + "=" * (-len(digest[7:]) % 4))
                self.record[name] = raw.hex()

    def read(self, relpath: str) -> bytes:
        data = self.zip.read(relpath)
        digest = sha256_hex(data)
        if self.record.get(relpath) != digest:
            raise WheelError(f"{self.path}:{relpath} does not match the wheel's RECORD")
        if PINNED_SHA256.get(relpath) != digest:
            raise WheelError(f"{relpath}: sha256 {digest} != pinned {PINNED_SHA256.get(relpath)}")
        return data

    def extract(self, relpath: str, dst: Path) -> str:
        """Write the verified file to dst; returns its sha256."""
        data = self.read(relpath)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        return sha256_hex(data)
