"""Make MediaPipe Tasks bundles from the BlazeFace short-range model, offline, with MediaPipe's own tools.

    python scripts/make_face_detector_task.py [--out DIR] [--check]

What the two Tasks need, and what this script does about it:

* FaceDetector: nothing. `assets/models/face_detection_short_range.tflite` (from the mediapipe 0.10.21 wheel)
  already carries the Tasks metadata FaceDetector reads (image input, normalization [-1, 1]); FaceDetector
  runs it as it is.
* ObjectDetector: the model needs ObjectDetector metadata: a "location" output with BoundingBoxProperties, a
  "score" output with the labels, and (BlazeFace has no NMS inside) DETECTOR_METADATA with the 896 SSD
  anchors and the decoding options. MediaPipe's metadata writers write exactly that
  (`object_detector.MetadataWriter.create_for_models_without_nms`). Two obstacles, both handled here:
  1. In every mediapipe release that installs with NumPy 2 (0.10.30 and later, checked up to 1.2.2),
     `mediapipe.tasks.python.metadata` imports `mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`,
     a C extension those wheels no longer ship, so the writers do not import. Its one function,
     GetMinimumMetadataParserVersion, is ported below from mediapipe/tasks/cc/metadata/metadata_version.cc
     and registered under that name before the writers are imported.
  2. ObjectDetector decodes raw boxes as [y, x, h, w] (and keypoints as y, x): the box format is fixed to
     YXHW for models without NMS. BlazeFace emits x first. The script appends one GATHER op to the graph that
     swaps each (x, y) pair of the regressors, so the model speaks ObjectDetector's order.

  The result is a real ObjectDetector model, but not a better face detector: ObjectDetector stretches the
  frame onto the square input (FaceDetector letterboxes it) and keeps the best anchor's box (NMS "DEFAULT")
  instead of blending them (WEIGHTED). On square frames the two agree to a pixel; on the 176x144 carphone
  clip the boxes overlap MediaPipe's FaceDetector boxes by IoU 0.73-0.80 on 12 of 120 frames.

Writes `face_detection_short_range_object_detector.tflite` to --out (default: the current directory). Needs
mediapipe >= 0.10.30 (the writers and the Tasks runtime); nothing is downloaded.
"""
from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "assets/models/face_detection_short_range.tflite"
OUTPUT_NAME = "face_detection_short_range_object_detector.tflite"
_PYWRAP = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"

# BlazeFace short range, as graphs/modules/face_detection_short_range.yaml decodes it.
INPUT_SIZE = 128
NUM_BOXES, NUM_COORDS, NUM_KEYPOINTS = 896, 16, 6
LAYERS = ((8, 2), (16, 6))  # (stride, anchors per cell); the three stride-16 layers share one 8x8 grid


def anchors() -> list[tuple[float, float]]:
    """Anchor centres (x, y) of BlazeFace short range, MediaPipe's order; every anchor is 1 x 1."""
    centres = []
    for stride, per_cell in LAYERS:
        cells = INPUT_SIZE // stride
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
    assert len(centres) == NUM_BOXES
    return centres


def minimum_parser_version(metadata_buf: bytes) -> str:
    """Port of GetMinimumMetadataParserVersion (mediapipe/tasks/cc/metadata/metadata_version.cc): the lowest
    metadata parser version that understands every field set in `metadata_buf`."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    found = [(1, 0, 0)]
    opts = fb.ProcessUnitOptions
    content = fb.ContentProperties
    files = fb.AssociatedFileType

    def associated(items):
        for f in items or ():
            if f.type == files.VOCABULARY:
                found.append((1, 0, 1))
            if f.type == files.SCANN_INDEX_FILE:
                found.append((1, 4, 0))
            if f.version is not None:
                found.append((1, 4, 1))

    def units(items):
        for unit in items or ():
            kind = unit.optionsType
            if kind in (opts.BertTokenizerOptions, opts.SentencePieceTokenizerOptions):
                found.append((1, 1, 0))
            if kind == opts.RegexTokenizerOptions:
                found.append((1, 2, 1))

    def tensors(items):
        for tensor in items or ():
            associated(tensor.associatedFiles)
            units(tensor.processUnits)
            if tensor.content is not None and tensor.content.contentPropertiesType == content.AudioProperties:
                found.append((1, 3, 0))

    model = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(metadata_buf, 0))
    for subgraph in model.subgraphMetadata or ():
        tensors(subgraph.inputTensorMetadata)
        tensors(subgraph.outputTensorMetadata)
        associated(subgraph.associatedFiles)
        for present, version in ((subgraph.inputProcessUnits, (1, 1, 0)), (subgraph.outputProcessUnits, (1, 1, 0)),
                                 (subgraph.inputTensorGroups, (1, 2, 0)), (subgraph.outputTensorGroups, (1, 2, 0)),
                                 (subgraph.customMetadata, (1, 5, 0))):
            if present is not None:
                found.append(version)
        units(subgraph.inputProcessUnits)
        units(subgraph.outputProcessUnits)
    associated(model.associatedFiles)
    return ".".join(map(str, max(found)))


def install_metadata_version_shim() -> None:
    """Make `mediapipe.tasks.python.metadata` importable where the wheel lacks its C extension."""
    try:
        __import__(_PYWRAP)
        return  # mediapipe 0.10.21 and older ship it
    except ImportError:
        pass
    module = types.ModuleType(_PYWRAP)
    module.GetMinimumMetadataParserVersion = minimum_parser_version
    parent = _PYWRAP.rpartition(".")[0]
    for name in ("mediapipe.tasks.cc", "mediapipe.tasks.cc.metadata", parent):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules[parent]._pywrap_metadata_version = module
    sys.modules[_PYWRAP] = module


def swap_xy_regressors(model_buf: bytes) -> bytearray:
    """The model with a GATHER after `regressors` that swaps each (x, y) pair, so boxes come out y-first."""
    import flatbuffers
    from mediapipe.tasks.metadata import schema_py_generated as tfl

    model = tfl.ModelT.InitFromPackedBuf(model_buf, 0)
    graph = model.subgraphs[0]
    names = [graph.tensors[i].name for i in graph.outputs]
    if names != [b"regressors", b"classificators"]:
        raise ValueError(f"expected outputs regressors, classificators; got {[n.decode() for n in names]}")
    graph.outputs = [int(i) for i in graph.outputs]  # unpacked as a read-only numpy view
    source = graph.outputs[0]
    order = np.arange(NUM_COORDS, dtype=np.int32).reshape(-1, 2)[:, ::-1].reshape(-1)  # 1,0,3,2,...
    buffer = tfl.BufferT()
    buffer.data = np.frombuffer(order.tobytes(), np.uint8)
    model.buffers.append(buffer)
    indices = tfl.TensorT()
    indices.shape, indices.type, indices.buffer, indices.name = [NUM_COORDS], tfl.TensorType.INT32, \
        len(model.buffers) - 1, b"regressors_yx_order"
    out = tfl.TensorT()
    out.shape, out.type, out.buffer, out.name = [1, NUM_BOXES, NUM_COORDS], tfl.TensorType.FLOAT32, 0, b"regressors"
    graph.tensors[source].name = b"regressors_xy"
    graph.tensors += [indices, out]
    code = tfl.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = tfl.BuiltinOperator.GATHER
    code.version = 1
    model.operatorCodes.append(code)
    op = tfl.OperatorT()
    op.opcodeIndex = len(model.operatorCodes) - 1
    op.inputs, op.outputs = [source, len(graph.tensors) - 2], [len(graph.tensors) - 1]
    op.builtinOptionsType = tfl.BuiltinOptions.GatherOptions
    op.builtinOptions = tfl.GatherOptionsT()
    op.builtinOptions.axis = 2
    graph.operators.append(op)
    graph.outputs[0] = len(graph.tensors) - 1
    builder = flatbuffers.Builder(len(model_buf) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return builder.Output()


def make_object_detector(source: Path = SOURCE, out_dir: Path = Path(".")) -> Path:
    """Write BlazeFace short range as an ObjectDetector model (label "face", 6 keypoints); return its path."""
    install_metadata_version_shim()
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_info, metadata_writer
    from mediapipe.tasks.python.metadata.metadata_writers import object_detector as od

    fixed = od.FixedAnchorsSchema([od.FixedAnchor(x_center=x, y_center=y, width=1.0, height=1.0)
                                   for x, y in anchors()])
    scale = float(INPUT_SIZE)
    decoding = od.TensorsDecodingOptions(
        num_classes=1, num_boxes=NUM_BOXES, num_coords=NUM_COORDS, keypoint_coord_offset=4,
        num_keypoints=NUM_KEYPOINTS, num_values_per_keypoint=2, x_scale=scale, y_scale=scale, w_scale=scale,
        h_scale=scale, apply_exponential_on_box_size=False, sigmoid_score=True)
    writer = od.MetadataWriter.create_for_models_without_nms(
        swap_xy_regressors(source.read_bytes()), input_norm_mean=[127.5], input_norm_std=[127.5],
        labels=metadata_writer.Labels().add(["face"]), ssd_anchors_options=od.SsdAnchorsOptions(fixed),
        tensors_decoding_options=decoding,
        output_tensors_order=metadata_info.RawDetectionOutputTensorsOrder.LOCATION_SCORE)
    model, _ = writer.populate()
    del writer  # its __del__ removes a temporary folder, and fails when left to interpreter shutdown
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / OUTPUT_NAME
    target.write_bytes(model)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder to write the bundle to")
    parser.add_argument("--check", action="store_true", help="run FaceDetector and ObjectDetector on a picture")
    parser.add_argument("--image", type=Path, help="the picture for --check (default: scikit-image's astronaut)")
    args = parser.parse_args()
    target = make_object_detector(SOURCE, args.out)
    print(f"wrote {target} ({target.stat().st_size} bytes)")
    if args.check:
        import cv2
        import mediapipe as mp
        from mediapipe.tasks.python import BaseOptions, vision

        sys.path.insert(0, str(ROOT / "tests"))
        from media import (
            astronaut_image,  # scikit-image's test picture, found without importing skimage
        )

        path = args.image or astronaut_image()
        if path is None:
            parser.error("--check needs --image PATH (scikit-image, which ships the default picture, is missing)")
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        picture = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image))
        for name, model, threshold in (("FaceDetector", SOURCE, {}), ("ObjectDetector", target,
                                                                       {"score_threshold": 0.5})):
            options = getattr(vision, f"{name}Options")(base_options=BaseOptions(model_asset_path=str(model)),
                                                        **threshold)
            with getattr(vision, name).create_from_options(options) as task:
                for d in task.detect(picture).detections:
                    box = d.bounding_box
                    print(f"{name}: box x {box.origin_x} y {box.origin_y} w {box.width} h {box.height}, "
                          f"score {d.categories[0].score:.3f}, keypoint 0 ({d.keypoints[0].x:.3f}, "
                          f"{d.keypoints[0].y:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
