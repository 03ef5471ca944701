#!/usr/bin/env python3
"""Decode the calculator options of MediaPipe's hands, pose, face mesh and selfie segmentation graphs.

Environment: the "mpenv" virtualenv (Python 3.11) with mediapipe==0.10.21 and
numpy<2 (mediapipe's protobuf classes and its graph expansion are needed):
    python3.11 -m venv /tmp/mpenv && /tmp/mpenv/bin/pip install mediapipe==0.10.21 "numpy<2"

Run from the repository root (the wheel as for scripts/convert_mediapipe_models.py):
    /tmp/mpenv/bin/python scripts/decode_mediapipe_graphs.py [--wheel PATH]

Writes assets/models/<solution>_graph_options.json for hands, pose, face_mesh
and selfie_segmentation.  The graphs are the ones MediaPipe's legacy Python
solutions (mediapipe/python/solutions/*.py) load.  Their .binarypb files only
reference registered subgraphs, so they are expanded with mediapipe's
ValidatedGraphConfig (the same expansion the C++ runtime does) and every node
of the expanded graph is listed with its streams and options, defaults
included.  SwitchContainers (model_complexity, with_attention, ...) expand to
all their branches; which one runs is chosen by a side packet at run time.

The Python solution then overrides a few options (calculator_params) and sets
side packets; both are read from the solution's source, with the values they
take under the solution's default arguments, under "python_solution".
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mediapipe_wheel import DEFAULT_WHEEL, MEDIAPIPE_VERSION, MediapipeWheel, sha256_hex  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = {  # name -> (graph in the wheel, Python solution in the wheel, its class)
    "hands": ("mediapipe/modules/hand_landmark/hand_landmark_tracking_cpu.binarypb",
              "mediapipe/python/solutions/hands.py", "Hands"),
    "pose": ("mediapipe/modules/pose_landmark/pose_landmark_cpu.binarypb",
             "mediapipe/python/solutions/pose.py", "Pose"),
    "face_mesh": ("mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb",
                  "mediapipe/python/solutions/face_mesh.py", "FaceMesh"),
    "selfie_segmentation": ("mediapipe/modules/selfie_segmentation/selfie_segmentation_cpu.binarypb",
                            "mediapipe/python/solutions/selfie_segmentation.py", "SelfieSegmentation"),
}


def import_all_protos() -> None:
    """Register every options message mediapipe ships, so any Any/extension can be decoded."""
    import mediapipe

    root = Path(mediapipe.__file__).parent
    for dirpath, _dirs, files in os.walk(root):
        for f in sorted(files):
            if f.endswith("_pb2.py"):
                rel = Path(dirpath, f[:-3]).relative_to(root.parent)
                try:
                    importlib.import_module(".".join(rel.parts))
                except Exception:  # a few pb2 modules need optional deps; their messages are unused
                    pass


def proto_to_dict(msg) -> dict:
    """Every field with its effective value (proto2 defaults included).

    MessageToDict drops fields left at their default, but calculators need the
    effective value of every option.  Unset sub-messages and unselected oneof
    members are left out; float32 fields print as 0.3, not 0.30000001192092896.
    """
    from google.protobuf.descriptor import FieldDescriptor as FD

    out = {}
    for field in msg.DESCRIPTOR.fields:
        repeated = field.label == FD.LABEL_REPEATED
        if not repeated and (field.type == FD.TYPE_MESSAGE or field.containing_oneof is not None):
            if not msg.HasField(field.name):
                continue
        value = getattr(msg, field.name)
        conv = []
        for v in (list(value) if repeated else [value]):
            if field.type == FD.TYPE_MESSAGE:
                v = proto_to_dict(v)
            elif field.type == FD.TYPE_ENUM:
                v = field.enum_type.values_by_number[v].name
            elif field.type == FD.TYPE_FLOAT:
                v = float(str(np.float32(v)))
            elif field.type == FD.TYPE_BYTES:
                v = v.decode("latin-1")
            conv.append(v)
        out[field.name] = conv if repeated else conv[0]
    return out


def node_options(node) -> dict:
    from google.protobuf import symbol_database

    db = symbol_database.Default()
    options = {}
    for any_msg in node.node_options:
        msg = db.GetSymbol(any_msg.TypeName())()
        any_msg.Unpack(msg)
        options[any_msg.TypeName()] = proto_to_dict(msg)
    for field, msg in node.options.ListFields():  # legacy proto2 extensions
        options[field.message_type.full_name] = proto_to_dict(msg)
    return options


def expand(binarypb: Path) -> tuple[dict, list[dict]]:
    from mediapipe.framework import calculator_pb2
    from mediapipe.python._framework_bindings import validated_graph_config

    top = calculator_pb2.CalculatorGraphConfig.FromString(binarypb.read_bytes())
    vgc = validated_graph_config.ValidatedGraphConfig()
    vgc.initialize(binary_graph_path=str(binarypb))
    expanded = calculator_pb2.CalculatorGraphConfig.FromString(vgc.binary_config)
    graph = {"type": top.type, "input_stream": list(top.input_stream),
             "output_stream": list(top.output_stream), "input_side_packet": list(top.input_side_packet),
             "top_level_nodes": [n.calculator for n in top.node]}
    nodes = []
    for i, n in enumerate(expanded.node):
        nodes.append({"index": i, "name": n.name, "calculator": n.calculator,
                      "input_stream": list(n.input_stream), "output_stream": list(n.output_stream),
                      "input_side_packet": list(n.input_side_packet),
                      "output_side_packet": list(n.output_side_packet),
                      "options": node_options(n)})
    return graph, nodes


def python_solution(source: str, class_name: str) -> dict:
    """Defaults, side packets and option overrides of a legacy solution's __init__."""
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    args = init.args.args[-len(init.args.defaults):]
    defaults = {a.arg: ast.literal_eval(d) for a, d in zip(args, init.args.defaults, strict=True)}
    call = next(n for n in ast.walk(init) if isinstance(n, ast.Call)
                and any(k.arg == "binary_graph_path" for k in n.keywords))
    out = {"class": class_name, "defaults": defaults}
    for kw in call.keywords:
        if kw.arg in ("side_inputs", "calculator_params") and isinstance(kw.value, ast.Dict):
            entries = {}
            for k, v in zip(kw.value.keys, kw.value.values, strict=True):
                expr = ast.unparse(v)
                # the expressions only combine the __init__ arguments
                value = eval(compile(ast.Expression(v), "<solution>", "eval"), {"__builtins__": {}},
                             dict(defaults))
                entries[ast.literal_eval(k)] = {"expression": expr, "default_value": value}
            out[kw.arg] = entries
        elif kw.arg == "outputs":
            out["outputs"] = ast.literal_eval(kw.value)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, default=DEFAULT_WHEEL)
    ap.add_argument("--out-dir", type=Path, default=REPO_ROOT / "assets" / "models")
    args = ap.parse_args()
    import mediapipe

    if mediapipe.__version__ != MEDIAPIPE_VERSION:
        sys.exit(f"need mediapipe=={MEDIAPIPE_VERSION}, found {mediapipe.__version__}")
    import_all_protos()
    wheel = MediapipeWheel(args.wheel)
    with tempfile.TemporaryDirectory() as tmp:
        for name, (graph_rel, solution_rel, class_name) in SOLUTIONS.items():
            local = Path(tmp) / Path(graph_rel).name
            graph_sha = wheel.extract(graph_rel, local)
            solution_src = wheel.read(solution_rel)
            graph, nodes = expand(local)
            solution = python_solution(solution_src.decode(), class_name)
            for key, entry in solution.get("calculator_params", {}).items():
                # solution_base applies these by node name in the expanded graph
                node_name, field = key.rsplit(".", 1)
                matches = [n["index"] for n in nodes if n["name"] == node_name]
                if len(matches) != 1:
                    sys.exit(f"{solution_rel}: calculator_params {key!r} matches nodes {matches}")
                entry["node_index"], entry["field"] = matches[0], field
            by_calculator: dict[str, list[int]] = {}
            for n in nodes:
                by_calculator.setdefault(n["calculator"], []).append(n["index"])
            result = {
                "source": {"mediapipe_version": MEDIAPIPE_VERSION, "graph": graph_rel,
                           "graph_sha256": graph_sha, "python_solution": solution_rel,
                           "python_solution_sha256": sha256_hex(solution_src),
                           "decoded_by": "scripts/decode_mediapipe_graphs.py"},
                "graph": graph,
                "python_solution": solution,
                "by_calculator": dict(sorted(by_calculator.items())),
                "nodes": nodes,
            }
            dst = args.out_dir / f"{name}_graph_options.json"
            dst.write_text(json.dumps(result, indent=1) + "\n")
            print(f"wrote {dst}: {len(nodes)} nodes, {graph['type']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
