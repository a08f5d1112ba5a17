// Rendering: each function rebuilds one section from the model. Sections are small, so a
// rebuild per animation frame is cheap and keeps the code free of diffing.

import { $, ago, badge, clock, duration, fill, h, json, pct } from "./dom.js";
import { FINAL, TASK_ORDER } from "./state.js";

const MAX_ROWS = 200;

export function renderMetrics(status) {
  if (!status) return;
  const card = (label, value, hint) => h("div", { class: "metric", "data-metric": label },
    h("span", { class: "metric-value" }, value),
    h("span", { class: "metric-label" }, label),
    hint ? h("span", { class: "metric-hint" }, hint) : null);
  fill($("metrics"),
    card("sessions", status.active_sessions, `${status.total_sessions} known`),
    card("idle", status.idle_sessions),
    card("busy", status.busy_sessions),
    card("ready", status.tasks_ready, `${status.tasks_pending} pending`),
    card("in progress", status.tasks_in_progress, `${status.tasks_assigned ?? 0} offered`),
    card("completed", status.tasks_completed),
    card("failed", status.tasks_failed, `${status.tasks_blocked ?? 0} blocked`),
    card("avg task", duration(status.avg_task_time)),
    card("utilization", pct(status.utilization)),
    spentCard(card, status.usage),
  );
}

/** What agents reported spending (the swarm's usage sums), with the tokens as the hint. */
function spentCard(card, usage) {
  if (!usage || !usage.attempts) return null; // a swarm whose agents report no cost
  const tokens = usage.input_tokens + usage.output_tokens + usage.cache_creation_input_tokens
    + usage.cache_read_input_tokens;
  return card("spent", money(usage.cost_usd), `${count(tokens)} tokens · ${usage.attempts} runs`);
}

function money(dollars) {
  return dollars >= 100 ? `$${dollars.toFixed(0)}` : `$${dollars.toFixed(dollars >= 1 ? 2 : 4)}`;
}

function count(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

export function renderSessions(model, onSelectTask) {
  const order = { busy: 0, idle: 1, draining: 2, offline: 3 };
  const list = [...model.sessions.values()]
    .sort((a, b) => order[a.status] - order[b.status] || a.id.localeCompare(b.id));
  const online = list.filter((s) => s.status !== "offline").length;
  $("sessions-count").textContent = `${online} online · ${list.length} known`;
  if (!list.length) {
    $("sessions").replaceChildren(h("p", { class: "empty" }, "No session has joined yet."));
    return;
  }
  const rows = list.map((s) => h("tr", { "data-session-id": s.id, class: `sess-${s.status}` },
    h("td", {}, h("div", { class: "name" }, s.name),
      s.name !== s.id ? h("div", { class: "sub mono" }, s.id) : null),
    h("td", {}, badge(s.status), quarantineBadge(s), rateLimitBadge(s)),
    h("td", {}, s.capabilities.length
      ? s.capabilities.map((c) => h("span", { class: "cap" }, c)) : h("span", { class: "muted" }, "any")),
    h("td", {}, s.current_tasks.length
      ? h("div", { class: "current" }, s.current_tasks.map((id) => h("button", {
        type: "button", class: "link mono", onclick: () => onSelectTask(id),
      }, id)))
      : h("span", { class: "muted" }, "–")),
    h("td", { class: "num", title: s.last_heartbeat || "" }, ago(s.last_heartbeat)),
    h("td", { class: "num" }, scoreBar(s.performance_score),
      h("span", { class: "sub" }, ` ${s.tasks_completed}✓ ${s.tasks_failed}✗`),
      s.usage ? h("span", { class: "sub spent", title: `${count(s.usage.input_tokens)} in / `
        + `${count(s.usage.output_tokens)} out tokens over ${s.usage.attempts} runs` },
      ` · ${money(s.usage.cost_usd)}`) : null)));
  $("sessions").replaceChildren(table(
    ["Session", "Status", "Capabilities", "Current task", "Heartbeat", "Score"], rows));
}

function quarantineBadge(s) {
  if (!s.quarantined_until) return null;
  return h("span", { class: "badge st-failed quarantined", title: `circuit breaker open until ${s.quarantined_until}` },
    `quarantined until ${clock(s.quarantined_until)}`);
}

/** Its agent waits out an API rate limit (until its next normal report). */
function rateLimitBadge(s) {
  const r = s.rate_limited;
  if (!r) return null;
  const said = [r.error, r.error_status].filter((x) => x != null).join(" ") || "waiting";
  return h("span", { class: "badge st-input_required rate-limited",
    title: `${said} on ${r.task_id} since ${r.at}` + (r.retry_at ? `, retrying at ${r.retry_at}` : "") },
  "rate-limited");
}

/** Sessions x capabilities: each session's learned speed against the pool (2.0x is twice as
 *  fast as a typical session), its success rate and median duration in the cell's title. */
export function renderSkills(model) {
  const online = [...model.sessions.values()].filter((s) => s.status !== "offline" && s.stats
    && Object.keys(s.stats).length);
  const caps = [...new Set(online.flatMap((s) => Object.keys(s.stats)))].sort();
  if (!online.length) {
    $("skills-note").textContent = "";
    $("skills").replaceChildren(h("p", { class: "empty" },
      "Nothing learned yet: speeds show once sessions complete tasks."));
    return;
  }
  $("skills-note").textContent = "speed against the pool · ★ detected";
  const rows = online.sort((a, b) => a.id.localeCompare(b.id)).map((s) => h("tr", { "data-session-id": s.id },
    h("td", {}, h("div", { class: "name" }, s.name), quarantineBadge(s)),
    ...caps.map((c) => skillCell(s, c))));
  $("skills").replaceChildren(table(["Session", ...caps], rows));
}

function skillCell(s, cap) {
  const st = s.stats[cap];
  if (!st) return h("td", { class: "num muted" }, "–");
  const detected = (s.detected_capabilities || []).includes(cap);
  const speed = st.speed == null ? "?" : `${st.speed.toFixed(2)}×`;
  // 2x faster than the pool (or more) is the greenest, 2x slower the reddest
  const heat = st.speed == null ? 0 : Math.round(3 * Math.max(-1, Math.min(1, Math.log2(st.speed))));
  const title = `${cap}: ${st.attempts} attempts, ${pct(st.success_rate)} success` +
    (st.duration_p50 == null ? "" : `, median ${duration(st.duration_p50)}`);
  return h("td", {
    class: `num skill heat${heat < 0 ? "-slow" : "-fast"}${Math.abs(heat)}`, title,
    "data-capability": cap,
  }, speed, detected ? h("span", { class: "star", title: "detected" }, " ★") : null,
  h("div", { class: "sub" }, pct(st.success_rate)));
}

function scoreBar(score) {
  return h("span", { class: "score", title: score.toFixed(3) },
    h("meter", { min: "0", max: "1", value: String(score) }), ` ${score.toFixed(2)}`);
}

function table(headings, rows) {
  return h("table", {},
    h("thead", {}, h("tr", {}, headings.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

export function renderQueue(model, filter, onFilter, onSelect) {
  const counts = model.countsByStatus();
  const chip = (label, value, count) => h("button", {
    type: "button", role: "tab", class: `chip ${value ? `st-${value}` : ""}`,
    "aria-selected": String(filter === value), "data-filter": value || "all",
    onclick: () => onFilter(value),
  }, label, h("span", { class: "count" }, String(count)));
  $("queue-filter").replaceChildren(
    chip("all", null, model.tasks.size),
    ...TASK_ORDER.filter((st) => counts[st]).map((st) => chip(st.replace("_", " "), st, counts[st])));
  const tasks = model.sortedTasks(filter);
  if (!tasks.length) {
    $("queue").replaceChildren(h("p", { class: "empty" }, filter ? `No ${filter} task.` : "The queue is empty."));
    return;
  }
  const rows = tasks.slice(0, MAX_ROWS).map((t) => h("tr", {
    "data-task-id": t.id, class: t.id === model.selected ? "selected" : null,
    tabindex: "0", onclick: () => onSelect(t.id),
    onkeydown: (e) => { if (e.key === "Enter") onSelect(t.id); },
  },
  h("td", {}, h("div", { class: "mono" }, t.id),
    t.title && t.title !== t.id ? h("div", { class: "sub" }, t.title) : null,
    t.parent_id ? h("div", { class: "sub subtask-of" }, `↳ of ${t.parent_id}`) : null),
  h("td", {}, h("span", { class: "cap" }, t.required_capability)),
  h("td", { class: "num" }, h("span", { class: `prio p${t.priority}` }, String(t.priority))),
  h("td", {}, badge(t.status)),
  h("td", { class: "mono sub" }, t.assigned_to || ""),
  h("td", { class: "num" }, t.status === "in_progress"
    ? h("meter", { min: "0", max: "1", value: String(t.progress?.value || 0), title: t.progress?.message || "" })
    : `${t.attempts}/${t.max_attempts ?? "?"}`)));
  const more = tasks.length > MAX_ROWS ? h("p", { class: "muted" }, `and ${tasks.length - MAX_ROWS} more`) : null;
  fill($("queue"), table(["Task", "Capability", "Prio", "Status", "Session", "Progress / tries"], rows), more);
}

export function renderDetail(model, actions) {
  const box = $("detail");
  const d = model.detail;
  if (!model.selected) return;
  if (!d || d.task.id !== model.selected) {
    box.replaceChildren(h("p", { class: "muted" }, `Loading ${model.selected}…`));
    return;
  }
  const t = d.task;
  const field = (k, v) => [h("dt", {}, k), h("dd", {}, v ?? "–")];
  fill(box,
    h("div", { class: "detail-head", "data-detail-id": t.id },
      h("div", {}, h("div", { class: "mono strong" }, t.id), t.title ? h("div", { class: "sub" }, t.title) : null),
      badge(t.status)),
    h("dl", { class: "fields" },
      field("type", t.type),
      field("capability", t.required_capability),
      field("priority", String(t.priority)),
      field("session", t.assigned_to),
      field("attempts", `${t.attempts} of ${t.max_attempts}`),
      field("depends on", t.dependencies.length ? t.dependencies.map((id) => h("button", {
        type: "button", class: "link mono", onclick: () => actions.select(id),
      }, id)) : null),
      field("split from", t.parent_id ? h("button", {
        type: "button", class: "link mono", "data-parent": t.parent_id,
        onclick: () => actions.select(t.parent_id),
      }, t.parent_id) : null),
      field("progress", t.status === "in_progress"
        ? `${pct(t.progress.value)}${t.progress.message ? ` · ${t.progress.message}` : ""}` : null),
      field("created", clock(t.created_at)),
      field("started", clock(t.started_at)),
      field("completed", clock(t.completed_at))),
    t.input !== null ? section("Input", h("pre", {}, json(t.input))) : null,
    t.result !== null ? section("Result", h("pre", { class: "result" }, json(t.result))) : null,
    t.error ? section("Error", h("pre", { class: "error" }, t.error)) : null,
    splitSection(model, t, actions),
    section("History", historyTable(d.history)),
    FINAL.has(t.status) ? null : cancelControl(t, model.confirming === t.id, actions),
  );
}

/** The tree of subtasks a split task waits for (or ended with), each with its status. */
function splitSection(model, task, actions) {
  const tree = model.splitTree(task.id);
  if (!tree.length) return null;
  const done = tree.filter((n) => n.task.status === "completed").length;
  return section(`Split into ${tree.length} (${done} completed)`, splitList(tree, actions));
}

function splitList(nodes, actions) {
  return h("ul", { class: "tree", "data-tree": "split" }, nodes.map((n) => h("li", {
    "data-tree-id": n.task.id,
  },
  h("button", { type: "button", class: "link mono", onclick: () => actions.select(n.task.id) },
    n.task.id),
  " ", badge(n.task.status),
  n.children.length ? splitList(n.children, actions) : null)));
}

function section(title, body) {
  return h("div", { class: "section" }, h("h3", {}, title), body);
}

function historyTable(history) {
  if (!history.length) return h("p", { class: "muted" }, "Not attempted yet.");
  return table(["#", "Session", "Started", "Took", "Outcome"], history.map((a) => h("tr", {},
    h("td", { class: "num" }, String(a.attempt)),
    h("td", { class: "mono" }, a.session_id),
    h("td", {}, clock(a.started_at)),
    h("td", { class: "num" }, a.duration === null ? "running" : duration(a.duration)),
    h("td", { title: a.error || "" }, a.outcome ? badge(a.outcome) : h("span", { class: "muted" }, "…")))));
}

function cancelControl(task, confirming, actions) {
  // The "are you sure" state lives in the model, so a re-render (an event) keeps it.
  if (!confirming) {
    return h("div", { class: "actions danger-zone" },
      h("button", { type: "button", class: "danger", "data-action": "cancel",
        onclick: () => actions.confirm(task.id) }, "Cancel task"));
  }
  return h("div", { class: "actions danger-zone" },
    h("span", {}, `Cancel ${task.id}? Its dependents will be blocked.`),
    h("button", { type: "button", class: "danger", "data-action": "confirm-cancel",
      onclick: () => actions.cancel(task.id) }, "Yes, cancel"),
    h("button", { type: "button", class: "ghost", onclick: () => actions.confirm(null) }, "Keep"));
}

export function renderKnowledge(entries, open, onToggle) {
  $("knowledge-count").textContent = `${entries.length} topics`;
  if (!entries.length) {
    $("knowledge").replaceChildren(h("p", { class: "empty" }, "Nothing shared yet."));
    return;
  }
  $("knowledge").replaceChildren(h("ul", { class: "topics" }, entries.map((e) => h("li", {
    "data-topic": e.topic, class: open.has(e.topic) ? "open" : null,
  },
  h("button", { type: "button", class: "topic", onclick: () => onToggle(e.topic) },
    h("span", { class: "mono" }, e.topic),
    h("span", { class: "sub" }, `v${e.version} · ${e.updated_by || "?"} · ${ago(e.updated_at)}`)),
  e.tags.length ? h("div", { class: "tags" }, e.tags.map((t) => h("span", { class: "cap" }, t))) : null,
  open.has(e.topic) ? h("pre", {}, json(e.content)) : null))));
}

export function renderFeed(feed) {
  $("feed-count").textContent = feed.length ? `last ${feed.length}` : "";
  if (!feed.length) {
    $("feed").replaceChildren(h("li", { class: "empty" }, "Waiting for events…"));
    return;
  }
  $("feed").replaceChildren(...feed.map((ev) => h("li", { "data-seq": String(ev.seq) },
    h("span", { class: "seq mono" }, `#${ev.seq}`),
    h("span", { class: "time" }, clock(ev.at)),
    h("span", { class: `etype et-${ev.type.split(".")[0]}` }, ev.type),
    h("span", { class: "summary" }, summary(ev)))));
}

function summary(ev) {
  const d = ev.data || {};
  const parts = [];
  if (d.task_id) parts.push(d.task_id);
  if (d.session_id) parts.push(`@ ${d.session_id}`);
  if (d.topic) parts.push(`${d.topic} v${d.version}`);
  if (ev.type === "task.progress") parts.push(pct(d.progress) + (d.message ? ` ${d.message}` : ""));
  if (ev.type === "task.completed") parts.push(duration(d.duration));
  if (d.reason) parts.push(`(${d.reason})`);
  if (d.because) parts.push(`because ${d.because}`);
  if (d.error) parts.push(`: ${d.error}`);
  return parts.join(" ");
}

/** The emergency banner: impossible to miss while an emergency task has not ended. */
export function renderEmergency(model) {
  const open = model.emergencies();
  const el = $("emergency");
  el.hidden = open.length === 0;
  el.replaceChildren(...open.map((t) => h("div", { "data-emergency-id": t.id },
    h("strong", {}, "EMERGENCY "), `${t.title || t.id} (${t.id}): `,
    h("span", { "data-status": t.status }, t.status.replace("_", " ")),
    t.assigned_to ? ` on ${t.assigned_to}` : " — waiting for a session")));
}

/** Open questions of task holders, each with a form to answer it. */
export function renderQuestions(model, onAnswer) {
  const open = model.openQuestions();
  $("questions-card").hidden = open.length === 0;
  $("questions-count").textContent = open.length ? `${open.length} open` : "";
  $("questions").replaceChildren(...open.map(({ task, question }) => {
    const form = h("form", { class: "form answer", "data-question-id": task.id,
      onsubmit: (e) => { e.preventDefault(); onAnswer(task.id, form); } },
      h("div", { class: "name" }, `${task.title || task.id} (${task.id})`,
        h("span", { class: "sub" }, task.assigned_to ? ` asked by ${task.assigned_to}` : "")),
      h("p", { class: "question" }, question ?? "(loading the question…)"),
      h("div", { class: "row" },
        h("input", { name: "answer", required: true, maxlength: "65536",
          placeholder: "Your answer", "aria-label": `Answer to ${task.id}` }),
        h("button", { type: "submit", class: "primary" }, "Answer")));
    return form;
  }));
}

export function renderInterrupt(interrupt) {
  const el = $("interrupt");
  el.hidden = !interrupt;
  el.textContent = interrupt ? `Swarm interrupted: ${interrupt.reason}` : "";
}

/** The autoscaled pools: each pool's size now, the size it is going to, and why. Hidden
 * when the server scales no pools. */
export function renderPools(scaling) {
  const pools = Object.values((scaling && scaling.pools) || {});
  $("pools-card").hidden = pools.length === 0;
  if (!pools.length) return;
  $("pools-note").textContent = scaling.leader
    ? "this replica scales them" : "decided here; the leader replica acts";
  const rows = pools.map((p) => {
    const backoff = (p.spawner_status && p.spawner_status.backoff) || {};
    const why = [p.reason, ...(p.limited_by || [])].join("; ");
    return h("tr", { "data-pool": p.name, class: backoff.crashlooping ? "pool-crashloop" : null },
      h("td", {}, h("div", { class: "name" }, p.name),
        h("div", { class: "sub" }, `${p.spawner} · ${p.capabilities.length ? p.capabilities.join(", ") : "any"}`)),
      h("td", { class: "num" }, `${p.min}..${p.max}`),
      h("td", { class: "num", "data-field": "current" }, p.current ?? "–"),
      h("td", { class: "num", "data-field": "desired" }, String(p.desired),
        p.pinned !== null && p.pinned !== undefined ? h("span", { class: "sub" }, " pinned") : null),
      h("td", { "data-field": "why" }, why,
        backoff.crashlooping ? h("div", { class: "warn", "data-field": "crashloop" },
          `crash-looping: ${backoff.failures} failed starts in a row (exit ${backoff.last_exit_code})`
          + (backoff.retry_at ? `, next try ${clock(backoff.retry_at)}` : "")) : null),
      h("td", { class: "num", title: p.decided_at || "" }, ago(p.decided_at)));
  });
  $("pools").replaceChildren(table(["Pool", "Size", "Current", "Desired", "Why", "Decided"], rows));
}
