// The dependency graph as a small SVG: a column per depth (a task sits one column right of
// its deepest dependency), rows ordered by the mean row of their dependencies so edges
// cross little. Enough for the few hundred tasks a dashboard can show legibly.

import { $, s } from "./dom.js";

const W = 156;
const H = 34;
const GAP_X = 56;
const GAP_Y = 12;
const PAD = 8;
const SHOW_ALL_UP_TO = 40;
const MAX_NODES = 150;

function pickNodes(tasks) {
  const ids = new Set(tasks.map((t) => t.id));
  const linked = new Set();
  for (const t of tasks) {
    for (const dep of t.dependencies || []) {
      if (ids.has(dep)) { linked.add(t.id); linked.add(dep); }
    }
  }
  const chosen = tasks.length <= SHOW_ALL_UP_TO ? tasks : tasks.filter((t) => linked.has(t.id));
  chosen.sort((a, b) => String(b.created_at).localeCompare(String(a.created_at)));
  return { nodes: chosen.slice(0, MAX_NODES), hidden: tasks.length - Math.min(chosen.length, MAX_NODES) };
}

function depths(byId) {
  const depth = new Map();
  const visiting = new Set();
  const visit = (id) => {
    if (depth.has(id)) return depth.get(id);
    if (visiting.has(id)) return 0; // a cycle cannot be stored; never loop if one were
    visiting.add(id);
    const deps = (byId.get(id).dependencies || []).filter((d) => byId.has(d));
    const d = deps.length ? 1 + Math.max(...deps.map(visit)) : 0;
    visiting.delete(id);
    depth.set(id, d);
    return d;
  };
  for (const id of byId.keys()) visit(id);
  return depth;
}

/** {id: {x, y}} for every node, and the SVG size. */
export function layout(nodes) {
  const byId = new Map(nodes.map((t) => [t.id, t]));
  const depth = depths(byId);
  const columns = [];
  for (const t of nodes) (columns[depth.get(t.id)] ||= []).push(t);
  const row = new Map();
  columns.forEach((col, c) => {
    const key = (t) => {
      const deps = (t.dependencies || []).filter((d) => row.has(d));
      return deps.length ? deps.reduce((acc, d) => acc + row.get(d), 0) / deps.length : 0;
    };
    col.sort((a, b) => (c ? key(a) - key(b) : 0) || a.id.localeCompare(b.id));
    col.forEach((t, r) => row.set(t.id, r));
  });
  const pos = new Map();
  for (const t of nodes) {
    pos.set(t.id, { x: PAD + depth.get(t.id) * (W + GAP_X), y: PAD + row.get(t.id) * (H + GAP_Y) });
  }
  const rows = Math.max(1, ...columns.map((c) => (c ? c.length : 0)));
  return {
    pos,
    width: PAD * 2 + columns.length * W + Math.max(0, columns.length - 1) * GAP_X,
    height: PAD * 2 + rows * H + (rows - 1) * GAP_Y,
  };
}

function clip(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

export function renderGraph(model, onSelect) {
  const { nodes, hidden } = pickNodes([...model.tasks.values()]);
  $("graph-note").textContent = hidden > 0 ? `${hidden} independent or older tasks not drawn` : "";
  if (!nodes.length) {
    $("graph").replaceChildren(s("svg", { width: "0", height: "0" }));
    $("graph-note").textContent = "no tasks yet";
    return;
  }
  const { pos, width, height } = layout(nodes);
  const edges = [];
  for (const t of nodes) {
    for (const dep of t.dependencies || []) {
      const a = pos.get(dep);
      const b = pos.get(t.id);
      if (!a || !b) continue;
      const x1 = a.x + W; const y1 = a.y + H / 2; const x2 = b.x; const y2 = b.y + H / 2;
      const mid = (x1 + x2) / 2;
      const from = model.tasks.get(dep);
      edges.push(s("path", {
        class: `edge ${from && from.status === "completed" ? "done" : ""}`,
        d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
        "marker-end": "url(#arrow)",
      }));
    }
  }
  const boxes = nodes.map((t) => {
    const p = pos.get(t.id);
    return s("g", {
      class: `node st-${t.status} ${t.id === model.selected ? "selected" : ""}`,
      "data-node-id": t.id, transform: `translate(${p.x},${p.y})`, tabindex: "0", role: "button",
      onclick: () => onSelect(t.id),
      onkeydown: (e) => { if (e.key === "Enter") onSelect(t.id); },
    },
    s("title", {}, `${t.id} · ${t.status}${t.title ? ` · ${t.title}` : ""}`),
    s("rect", { width: String(W), height: String(H), rx: "7" }),
    s("circle", { class: "pip", cx: "13", cy: String(H / 2), r: "4.5" }),
    s("text", { x: "25", y: String(H / 2 + 4) }, clip(t.id, 19)));
  });
  $("graph").replaceChildren(s("svg", {
    width: String(width), height: String(height), viewBox: `0 0 ${width} ${height}`,
    role: "img", "aria-label": "Task dependency graph",
  },
  s("defs", {}, s("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
    markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse",
  }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }))),
  s("g", { class: "edges" }, edges),
  s("g", { class: "nodes" }, boxes)));
}
