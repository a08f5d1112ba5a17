// Tiny DOM helpers. Every piece of data reaches the page as text (textContent or an
// attribute), never as HTML, so a task title cannot inject markup.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, props, children) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "text") {
      el.textContent = String(value);
    } else {
      el.setAttribute(key === "className" ? "class" : key, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** h("td", {class: "x", onclick: fn}, "text", otherNode) */
export function h(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** The same for SVG elements. */
export function s(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

/** Replace an element's children, skipping null/false (replaceChildren would print "null"). */
export function fill(el, ...children) {
  el.replaceChildren();
  return build(el, {}, children);
}

export function $(id) {
  return document.getElementById(id);
}

/** "4s ago", "3m ago", "2h ago" from an ISO time. */
export function ago(iso, now = Date.now()) {
  if (!iso) return "never";
  const secs = Math.max(0, (now - Date.parse(iso)) / 1000);
  if (secs < 60) return `${Math.floor(secs)}s ago`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ago`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h ago`;
  return `${Math.floor(secs / 86400)}d ago`;
}

/** Seconds as "850 ms", "12.4 s", "3m 05s", "2h 10m". */
export function duration(secs) {
  if (secs === null || secs === undefined || Number.isNaN(secs)) return "–";
  if (secs < 1) return `${Math.round(secs * 1000)} ms`;
  if (secs < 60) return `${secs.toFixed(1)} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ${String(Math.floor(secs % 60)).padStart(2, "0")}s`;
  return `${Math.floor(secs / 3600)}h ${String(Math.floor((secs % 3600) / 60)).padStart(2, "0")}m`;
}

export function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour12: false }) : "–";
}

export function pct(x) {
  return `${Math.round((x || 0) * 100)}%`;
}

export function badge(status) {
  return h("span", { class: `badge st-${status}`, "data-status": status }, status.replace("_", " "));
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}
