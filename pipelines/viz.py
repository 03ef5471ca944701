"""The graph as a picture: Graphviz DOT (printed), SVG (through Graphviz's `dot`), or Mermaid."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .config import GraphConfig
from .errors import PipelineError


def _edges(config: GraphConfig):
    producers = {s: (n.name, tag) for n in config.nodes if n.enabled for tag, ss in n.outputs.items() for s in ss}
    for s in config.inputs:
        producers[s] = (f"input:{s}", "")
    for node in (n for n in config.nodes if n.enabled):
        for tag, refs in node.inputs.items():
            for ref in refs:
                src = producers.get(ref.stream, (f"missing:{ref.stream}", ""))
                yield src[0], src[1], node.name, tag, ref.stream, ref.back_edge
    for s in config.outputs:
        if s in producers:
            yield producers[s][0], producers[s][1], f"output:{s}", "", s, False


def to_dot(config: GraphConfig) -> str:
    q = lambda s: '"' + s.replace('"', r'\"') + '"'  # noqa: E731
    lines = ["digraph framegraph {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
             'fontname="Helvetica"];', '  edge [fontname="Helvetica", fontsize=10];']
    for s in config.inputs:
        lines.append(f"  {q('input:' + s)} [label={q(s)}, shape=oval, fillcolor=\"#dff0d8\"];")
    for s in config.outputs:
        lines.append(f"  {q('output:' + s)} [label={q(s)}, shape=oval, fillcolor=\"#fcf8e3\"];")
    for node in (n for n in config.nodes if n.enabled):
        lines.append(f"  {q(node.name)} [label={q(node.name + chr(10) + node.calculator)}];")
    for src, _, dst, _, stream, back in _edges(config):
        style = ", style=dashed, constraint=false" if back else ""
        lines.append(f"  {q(src)} -> {q(dst)} [label={q(stream)}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(config: GraphConfig) -> str:
    ids: dict[str, str] = {}

    def nid(name: str) -> str:
        return ids.setdefault(name, f"n{len(ids)}")

    lines = ["flowchart TD"]
    for s in config.inputs:
        lines.append(f'  {nid("input:" + s)}(["{s}"])')
    for s in config.outputs:
        lines.append(f'  {nid("output:" + s)}(["{s}"])')
    for node in (n for n in config.nodes if n.enabled):
        lines.append(f'  {nid(node.name)}["{node.name}<br/>{node.calculator}"]')
    for src, _, dst, _, stream, back in _edges(config):
        arrow = "-.->" if back else "-->"
        lines.append(f"  {nid(src)} {arrow}|{stream}| {nid(dst)}")
    return "\n".join(lines) + "\n"


def write_viz(config: GraphConfig, path: str | None) -> str | None:
    """Print DOT when `path` is None or '-', else write by extension (.dot/.gv, .mmd/.mermaid, .svg/.png)."""
    if path in (None, "-"):
        return to_dot(config)
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix in (".dot", ".gv"):
        out.write_text(to_dot(config))
    elif suffix in (".mmd", ".mermaid"):
        out.write_text(to_mermaid(config))
    elif suffix in (".svg", ".png", ".pdf"):
        dot = shutil.which("dot")
        if dot is None:
            raise PipelineError(f"--viz {path}: writing {suffix} needs Graphviz's 'dot' program "
                                "(apt install graphviz); or write .dot or .mmd instead")
        subprocess.run([dot, f"-T{suffix[1:]}", "-o", str(out)], input=to_dot(config), text=True, check=True)
    else:
        raise PipelineError(f"--viz {path}: unknown extension '{suffix}'; use .dot, .mmd, .svg or .png")
    return None
