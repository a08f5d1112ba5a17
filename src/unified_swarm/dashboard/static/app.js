// The dashboard: load a snapshot over REST, then follow the event stream from the snapshot's
// sequence number, so nothing that happened in between is missed.

import { Api, ApiError, AuthError, forgetToken, loadToken, saveToken } from "./api.js";
import { $ } from "./dom.js";
import { renderGraph } from "./graph.js";
import { LiveStream } from "./live.js";
import { Model } from "./state.js";
import * as views from "./views.js";

const PREFILL = 100; // events before the snapshot shown in the feed on load
const FLUSH_MS = 200; // refetch what events touched at most this often
const REFRESH_MS = 10000; // heartbeats emit no events: re-read sessions this often
const MAX_SINGLE_FETCHES = 20; // more new tasks than this: re-read the whole list...
const FULL_RELOAD_MS = 3000; // ...but at most this often
const CHECK_TOKEN_EVERY = 3; // failed handshakes in a row before asking REST about the token

class Dashboard {
  constructor(token) {
    this.token = token;
    this.api = new Api(token);
    this.model = new Model();
    this.filter = null;
    this.openTopics = new Set();
    this.pending = new Set();
    this.frame = 0;
    this.flushTimer = null;
    this.flushing = false;
    this.live = null;
    this.ticker = null;
    this.lastFullReload = 0;
  }

  async start() {
    // The status first: its last_event_seq is where the stream takes over from the snapshot.
    const status = await this.api.status();
    const [sessions, tasks, knowledge, scaling] = await Promise.all([
      this.api.sessions(), this.api.tasks(), this.api.knowledge(), this.api.scaling()]);
    this.model.status = status;
    this.model.scaling = scaling;
    this.model.setSessions(sessions.sessions);
    this.model.setTasks(tasks);
    this.model.knowledge = knowledge.entries;
    await this.loadQuestions();
    showMain();
    this.render("all");
    this.live = new LiveStream(this.token, {
      onEvent: (ev) => this.onEvent(ev),
      onState: (state, failures) => this.onConnection(state, failures),
      onResync: () => this.restart(),
    });
    this.live.start(Math.max(0, status.last_event_seq - PREFILL));
    this.ticker = setInterval(() => {
      this.model.dirty.sessions = true;
      this.model.dirty.status = true;
      this.model.dirty.scaling = true;
      this.scheduleFlush();
    }, REFRESH_MS);
    this.ageTicker = setInterval(() => this.render("sessions"), 1000);
  }

  stop() {
    if (this.live) this.live.stop();
    clearInterval(this.ticker);
    clearInterval(this.ageTicker);
    clearTimeout(this.flushTimer);
  }

  async restart() {
    this.stop();
    const next = new Dashboard(this.token);
    app = next;
    await next.start().catch(failed);
  }

  onEvent(ev) {
    this.model.apply(ev);
    $("conn-seq").textContent = `#${ev.seq}`;
    if (ev.type.startsWith("task.")) this.render("queue", "graph");
    // the open task's split tree shows its subtasks' statuses: follow them too
    if (ev.type.startsWith("task.") && this.model.below(ev.data?.task_id, this.model.selected)) {
      this.render("detail");
    }
    if (ev.type.startsWith("session.")) this.render("sessions");
    if (ev.type === "swarm.interrupt") this.render("interrupt");
    if (ev.type.startsWith("task.") || ev.type === "swarm.emergency") this.render("emergency", "questions");
    if (ev.type.startsWith("pool.")) this.render("pools");
    this.render("feed");
    this.scheduleFlush();
  }

  onConnection(state, failures) {
    $("conn").dataset.state = state;
    $("conn-text").textContent = state;
    if (failures && failures % CHECK_TOKEN_EVERY === 0) {
      // The handshake keeps failing: the server is down, or the token was changed. One
      // REST call tells which (a 401 means the token).
      this.api.status().catch((err) => { if (err instanceof AuthError) this.signOut(err.message); });
    }
  }

  scheduleFlush() {
    if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), FLUSH_MS);
  }

  /** Refetch what events marked dirty; events arriving meanwhile mark it dirty again. */
  async flush() {
    this.flushTimer = null;
    if (this.flushing) { this.scheduleFlush(); return; }
    this.flushing = true;
    const d = this.model.dirty;
    const taskIds = [...d.tasks];
    const want = { sessions: d.sessions, status: d.status, knowledge: d.knowledge, scaling: d.scaling };
    this.model.dirty = { tasks: new Set(), sessions: false, status: false, knowledge: false, scaling: false };
    try {
      await Promise.all([
        this.refreshTasks(taskIds),
        want.sessions && this.api.sessions().then((r) => { this.model.setSessions(r.sessions); this.render("sessions"); }),
        want.status && this.api.status().then((r) => { this.model.status = r; this.render("metrics"); }),
        want.knowledge && this.api.knowledge().then((r) => { this.model.knowledge = r.entries; this.render("knowledge"); }),
        want.scaling && this.api.scaling().then((r) => { this.model.scaling = r; this.render("pools"); }),
      ]);
    } catch (err) {
      this.report(err);
    } finally {
      this.flushing = false;
    }
    if (this.model.dirty.tasks.size) this.scheduleFlush(); // replies that came back stale
  }

  async refreshTasks(ids) {
    if (!ids.length) return;
    if (ids.length > MAX_SINGLE_FETCHES) {
      const wait = this.lastFullReload + FULL_RELOAD_MS - Date.now();
      if (wait > 0) { // a burst: come back for all of them in one go
        for (const id of ids) this.model.dirty.tasks.add(id);
        setTimeout(() => this.scheduleFlush(), wait);
        return;
      }
      this.lastFullReload = Date.now();
      const since = this.model.seq;
      for (const t of await this.api.tasks()) this.model.putTask(t, since);
      ids = this.model.selected ? [this.model.selected] : [];
    }
    const since = this.model.seq;
    await Promise.all(ids.map((id) => this.api.task(id).then((r) => {
      const fresh = this.model.putTask(r.task, since);
      if (fresh && id === this.model.selected) { this.model.detail = r; this.render("detail"); }
    }, (err) => { if (!(err instanceof ApiError && err.status === 404)) throw err; })));
    this.render("queue", "graph");
  }

  /** The questions of tasks already waiting when the page loads (later ones come with
   * their task.input_required event). */
  async loadQuestions() {
    const waiting = [...this.model.tasks.values()].filter((t) => t.status === "input_required");
    await Promise.all(waiting.map((t) => this.api.task(t.id).then((r) => {
      const notes = (r.task.context && r.task.context.notes) || [];
      const asked = notes.filter((n) => n.kind === "question").pop();
      if (asked) this.model.questions.set(t.id, asked.text);
    })));
  }

  async answer(id, form) {
    const text = String(new FormData(form).get("answer") || "").trim();
    if (!text) return;
    try {
      const since = this.model.seq;
      const r = await this.api.answer(id, text);
      this.model.putTask(r.task, since);
      this.model.questions.delete(id);
      toast(`Answered ${id}: it is ${r.task.status.replace("_", " ")}`);
      this.render("questions", "queue");
    } catch (err) {
      this.report(err);
    }
  }

  async select(id) {
    this.model.selected = id;
    this.model.detail = null;
    this.render("detail", "queue", "graph");
    try {
      const since = this.model.seq;
      const r = await this.api.task(id);
      if (this.model.selected !== id) return;
      this.model.putTask(r.task, since);
      this.model.detail = r; // shown even if stale: the refetch it triggered follows
      this.render("detail");
      this.scheduleFlush();
    } catch (err) {
      this.report(err);
    }
  }

  async cancel(id) {
    this.model.confirming = null;
    try {
      const since = this.model.seq;
      const r = await this.api.cancel(id, "cancelled from the dashboard");
      this.model.putTask(r.task, since);
      toast(`Cancelled ${id}`);
      await this.select(id);
    } catch (err) {
      this.report(err);
    }
  }

  async addTask(form) {
    const f = new FormData(form);
    const text = (k) => String(f.get(k) || "").trim();
    const spec = { type: text("type") };
    if (text("id")) spec.id = text("id");
    if (text("title")) spec.title = text("title");
    if (text("capability")) spec.required_capability = text("capability");
    if (text("priority")) spec.priority = Number(text("priority"));
    const deps = text("dependencies").split(",").map((x) => x.trim()).filter(Boolean);
    if (deps.length) spec.dependencies = deps;
    if (text("input")) {
      try { spec.input = JSON.parse(text("input")); } catch (err) {
        formMessage(`Input is not JSON: ${err.message}`, true);
        return;
      }
    }
    try {
      const since = this.model.seq;
      const r = await this.api.addTask(spec);
      const task = r.tasks[0];
      this.model.putTask(task, since);
      form.reset();
      formMessage(`Added ${task.id} (${task.status})`);
      this.render("queue", "graph");
      await this.select(task.id);
    } catch (err) {
      if (err instanceof AuthError) this.signOut(err.message);
      else formMessage(err.message, true);
    }
  }

  signOut(message) {
    this.stop();
    forgetToken();
    showLogin(message);
  }

  report(err) {
    if (err instanceof AuthError) this.signOut(err.message);
    else toast(err.message, true);
  }

  /** Coalesce renders into one animation frame. */
  render(...parts) {
    for (const p of parts) this.pending.add(p);
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const todo = this.pending;
      this.pending = new Set();
      const all = todo.has("all");
      const m = this.model;
      const select = (id) => this.select(id);
      if (all || todo.has("metrics")) views.renderMetrics(m.status);
      if (all || todo.has("sessions")) views.renderSessions(m, select);
      if (all || todo.has("sessions")) views.renderSkills(m);
      if (all || todo.has("queue")) views.renderQueue(m, this.filter, (f) => { this.filter = f; this.render("queue"); }, select);
      if (all || todo.has("graph")) renderGraph(m, select);
      if (all || todo.has("detail")) views.renderDetail(m, {
        select,
        cancel: (id) => this.cancel(id),
        confirm: (id) => { m.confirming = id; this.render("detail"); },
      });
      if (all || todo.has("knowledge")) views.renderKnowledge(m.knowledge, this.openTopics, (t) => this.toggleTopic(t));
      if (all || todo.has("feed")) views.renderFeed(m.feed);
      if (all || todo.has("interrupt")) views.renderInterrupt(m.interrupt);
      if (all || todo.has("emergency")) views.renderEmergency(m);
      if (all || todo.has("questions")) views.renderQuestions(m, (id, form) => this.answer(id, form));
      if (all || todo.has("pools")) views.renderPools(m.scaling);
    });
  }

  toggleTopic(topic) {
    if (this.openTopics.has(topic)) this.openTopics.delete(topic);
    else this.openTopics.add(topic);
    this.render("knowledge");
  }
}

let app = null;
let toastTimer = null;

function toast(message, isError = false) {
  const el = $("toast");
  el.textContent = message;
  el.classList.toggle("error", isError);
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
}

function formMessage(message, isError = false) {
  const el = $("add-msg");
  el.textContent = message;
  el.classList.toggle("error", isError);
}

function showMain() {
  $("login").hidden = true;
  $("main").hidden = false;
  $("signout").hidden = false;
}

function showLogin(message = "") {
  $("main").hidden = true;
  $("signout").hidden = true;
  $("login").hidden = false;
  $("login-msg").textContent = message;
  $("conn").dataset.state = "offline";
  $("conn-text").textContent = "signed out";
  $("login-token").focus();
}

function failed(err) {
  if (err instanceof AuthError) {
    forgetToken();
    showLogin("That token was refused.");
  } else {
    toast(`Cannot reach the swarm: ${err.message}`, true);
    setTimeout(() => boot(), 3000);
  }
}

function boot() {
  const token = loadToken();
  if (!token) { showLogin(); return; }
  if (app) app.stop();
  app = new Dashboard(token);
  app.start().catch(failed);
}

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const token = $("login-token").value.trim();
  if (!token) return;
  saveToken(token);
  $("login-token").value = "";
  boot();
});

$("add-task").addEventListener("submit", (e) => {
  e.preventDefault();
  if (app) app.addTask(e.target);
});

$("signout").addEventListener("click", () => { if (app) app.signOut(""); });

window.addEventListener("hashchange", () => { if (location.hash.includes("token=")) boot(); });

boot();
