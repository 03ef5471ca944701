// The live page: the graph drawn with dagre, each shown stream as MJPEG, the figures over a WebSocket.
// Every value from the server is set as text (textContent), never parsed as HTML.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token");
  const query = token ? "?token=" + encodeURIComponent(token) : "";
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const SVG = "http://www.w3.org/2000/svg";
  const figures = new Map(); // node name -> {group, fig} in the drawing
  let updates = 0;
  let finished = false; // the last figures said the graph is done

  function make(tag, attrs, text, ns) {
    const el = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    return el;
  }

  async function getJson(path) {
    const response = await fetch(path, { headers });
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  function setConnection(text, cls) {
    const el = document.getElementById("conn");
    el.textContent = text;
    el.className = "conn " + cls;
  }

  function showVideos(streams) {
    const box = document.getElementById("videos");
    for (const stream of streams) {
      const figure = make("figure", { "data-stream": stream });
      figure.appendChild(make("img", { id: "video-" + stream, alt: "live video of " + stream,
        src: "video/" + encodeURIComponent(stream) + query }));
      figure.appendChild(make("figcaption", {}, stream));
      box.appendChild(figure);
    }
  }

  // Streams added or removed while the page is open (a run of several streams): their videos follow.
  function syncVideos(video) {
    const box = document.getElementById("videos");
    const wanted = new Set(video.map((v) => v.stream));
    for (const figure of Array.from(box.querySelectorAll("figure"))) {
      if (!wanted.has(figure.dataset.stream)) figure.remove();
    }
    const shown = new Set(Array.from(box.querySelectorAll("figure")).map((f) => f.dataset.stream));
    showVideos(video.map((v) => v.stream).filter((s) => !shown.has(s)));
  }

  function drawGraph(graph) {
    const g = new dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: "TB", nodesep: 24, ranksep: 36, edgesep: 10, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    const boxWidth = (...texts) => Math.max(150, 7 * Math.max(...texts.map((t) => t.length)) + 16);
    for (const node of graph.nodes) {
      g.setNode(node.name, { width: boxWidth(node.name, node.calculator), height: 54, node });
    }
    for (const edge of graph.edges) {
      let from = edge.from;
      if (!g.hasNode(from)) { // a graph input
        from = "input:" + edge.stream;
        if (!g.hasNode(from)) g.setNode(from, { width: boxWidth(edge.stream), height: 30, input: edge.stream });
      }
      g.setEdge(from, edge.to, { label: edge.stream, width: 7 * edge.stream.length, height: 12, labelpos: "c",
        back: edge.back_edge }, edge.to + "/" + edge.tag + "/" + edge.stream);
    }
    dagre.layout(g);
    const svg = document.getElementById("graph");
    const size = g.graph();
    svg.setAttribute("viewBox", "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height));
    const defs = make("defs", {}, undefined, SVG);
    const marker = make("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
      markerHeight: "7", orient: "auto-start-reverse" }, undefined, SVG);
    marker.appendChild(make("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#6d86b3" }, undefined, SVG));
    defs.appendChild(marker);
    svg.appendChild(defs);
    for (const e of g.edges()) {
      const edge = g.edge(e);
      const group = make("g", { class: "edge" + (edge.back ? " back" : "") }, undefined, SVG);
      const d = edge.points.map((p, i) => (i ? "L" : "M") + p.x.toFixed(1) + " " + p.y.toFixed(1)).join(" ");
      group.appendChild(make("path", { d, "marker-end": "url(#arrow)" }, undefined, SVG));
      group.appendChild(make("text", { x: edge.x, y: edge.y, "text-anchor": "middle" }, edge.label, SVG));
      svg.appendChild(group);
    }
    for (const name of g.nodes()) {
      const box = g.node(name);
      const info = box.node;
      const group = make("g", { class: "node" + (info && info.source ? " source" : ""), "data-node": name,
        transform: "translate(" + (box.x - box.width / 2) + "," + (box.y - box.height / 2) + ")" }, undefined, SVG);
      group.appendChild(make("rect", { width: box.width, height: box.height }, undefined, SVG));
      const cx = box.width / 2;
      group.appendChild(make("text", { class: "name", x: cx, y: 15, "text-anchor": "middle" },
        info ? info.name : box.input, SVG));
      if (info) {
        group.appendChild(make("text", { class: "calc", x: cx, y: 29, "text-anchor": "middle" }, info.calculator, SVG));
        const fig = make("text", { class: "fig", x: cx, y: 45, "text-anchor": "middle" }, "…", SVG);
        group.appendChild(fig);
        figures.set(name, { group, fig, source: info.source });
      }
      svg.appendChild(group);
    }
  }

  function fillTable(id, rows) {
    const body = document.querySelector("#" + id + " tbody");
    body.replaceChildren(...rows.map((cells) => {
      const tr = make("tr", { "data-node": cells[0] });
      for (const cell of cells) tr.appendChild(make("td", {}, String(cell)));
      return tr;
    }));
  }

  function showStats(message) {
    const { stats, streams } = message;
    fillTable("stats", stats.nodes.map((r) => [r.node, r.calculator, r.status, r.packets_in, r.packets_out,
      r.fps.toFixed(1), r.latency_p50_ms.toFixed(2), r.latency_p99_ms.toFixed(2), r.max_queue, r.drops, r.errors]));
    syncVideos(streams.video);
    fillTable("sources", streams.sources.map((s) => [s.name, s.source === null ? "" : s.source, s.frames,
      s.fps.toFixed(1), s.status]));
    for (const r of stats.nodes) {
      const shown = figures.get(r.node);
      if (!shown) continue;
      shown.fig.textContent = r.fps.toFixed(1) + " fps · p99 " + r.latency_p99_ms.toFixed(1) + " ms · q " +
        r.max_queue + (r.drops ? " · " + r.drops + " dropped" : "");
      const alert = r.errors > 0 || /^(failed|reconnecting|connecting \(attempt)/.test(r.status);
      shown.group.setAttribute("class", "node" + (shown.source ? " source" : "") +
        (r.status === "ended" ? " ended" : "") + (alert ? " alert" : ""));
    }
    updates += 1;
    finished = stats.done;
    document.body.dataset.updates = String(updates);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString() +
      " · " + stats.wall_seconds.toFixed(1) + " s running" + (stats.done ? " · graph finished" : "");
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(scheme + "//" + location.host + "/ws" + query);
    ws.onopen = () => setConnection("live", "ok");
    ws.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "stats") showStats(message);
    };
    ws.onclose = () => setConnection(finished ? "the graph has finished" : "disconnected (the server stopped)",
      "off");
  }

  async function main() {
    try {
      const graph = await getJson("api/graph");
      document.getElementById("graph-file").textContent = (graph.file || "") +
        (graph.description ? " — " + graph.description : "");
      showVideos(graph.video);
      drawGraph(graph);
    } catch (err) {
      setConnection(String(err), "off");
      return;
    }
    connect();
  }

  main();
})();
