// What the page knows of the swarm, kept current by events. An event updates the record it
// names at once (so the page moves without waiting), and marks what it touched "dirty";
// the app then refetches those records from the API, a few at a time, so every detail the
// event did not carry (scores, history, results) catches up too.

// the events that change a session's status, and to what (others, like session.quarantined,
// leave it as it is)
const SESSION_STATUS = {
  "session.left": "offline", "session.offline": "offline", "session.draining": "draining",
};

export const TASK_ORDER = [
  "input_required", "in_progress", "assigned", "ready", "pending", "waiting", "blocked",
  "failed", "cancelled", "completed",
];
export const FINAL = new Set(["completed", "failed", "cancelled", "blocked"]);
const STATUS_AFTER = {
  "task.ready": "ready",
  "task.assigned": "assigned",
  "task.claimed": "in_progress",
  "task.completed": "completed",
  "task.failed": "failed",
  "task.requeued": "ready",
  "task.blocked": "blocked",
  "task.cancelled": "cancelled",
  "task.split": "waiting",
  "task.input_required": "input_required",
};
//: the priority of the emergency class (POST /swarm/emergency), above every given one
export const EMERGENCY_PRIORITY = 11;
const RELEASES = new Set(["task.requeued", "task.failed", "task.cancelled", "task.split"]);
/** How deep the split tree is drawn (the server nests splits 5 deep by default). */
const TREE_DEPTH = 8;
const FEED_SIZE = 200;

export class Model {
  constructor() {
    this.sessions = new Map();
    this.tasks = new Map();
    this.knowledge = [];
    this.status = null;
    this.scaling = null; // GET /swarm/scaling: the autoscaled pools
    this.interrupt = null;
    this.questions = new Map(); // task id -> the question its holder asked (input_required)
    this.feed = [];
    this.selected = null;
    this.detail = null; // {task, history} of the selected task
    this.confirming = null; // the task whose cancel button asks "are you sure?"
    this.seq = 0; // the last event applied
    this.dirty = { tasks: new Set(), sessions: false, status: false, knowledge: false, scaling: false };
  }

  setSessions(list) {
    this.sessions = new Map(list.map((s) => [s.id, s]));
  }

  setTasks(list) {
    this.tasks = new Map(list.map((t) => [t.id, t]));
  }

  /**
   * Store a task read over REST. `since` is the last event seq applied when the read was
   * sent: if an event for this task came after it, the reply may predate that event, so it
   * is dropped and the task read again (a slow reply must not undo a newer event).
   */
  putTask(task, since) {
    const local = this.tasks.get(task.id);
    if (since !== undefined && local && local._seq > since) {
      this.dirty.tasks.add(task.id);
      return false;
    }
    task._seq = local ? local._seq : 0;
    this.tasks.set(task.id, task);
    return true;
  }

  apply(ev) {
    this.seq = ev.seq;
    this.feed.unshift(ev);
    if (this.feed.length > FEED_SIZE) this.feed.length = FEED_SIZE;
    this.dirty.status = true;
    const d = ev.data || {};
    if (ev.type.startsWith("task.")) this.applyTask(ev, d);
    if (ev.type.startsWith("session.")) {
      const s = this.sessions.get(d.session_id);
      const status = SESSION_STATUS[ev.type];
      if (s && status) s.status = status;
      // shown at once; the refetch below brings the rest
      if (s && ev.type === "session.rate_limited") s.rate_limited = d.rate_limited;
      this.dirty.sessions = true;
    }
    // an outcome moves what the model says of its session
    if (ev.type === "task.completed" || ev.type === "task.failed") this.dirty.sessions = true;
    if (ev.type === "knowledge.updated") this.dirty.knowledge = true;
    // a pool's size follows its sessions: re-read the pools when either moves
    if (ev.type.startsWith("pool.") || ev.type.startsWith("session.")) this.dirty.scaling = true;
    if (ev.type === "swarm.interrupt") this.interrupt = d.active ? d : null;
  }

  applyTask(ev, d) {
    const id = d.task_id;
    if (!id) return;
    let t = this.tasks.get(id);
    if (ev.type === "task.added") {
      t = t || {
        id, type: d.type, title: d.title, required_capability: d.required_capability,
        priority: d.priority, dependencies: d.dependencies || [], status: d.status,
        parent_id: d.parent_id ?? null,
        assigned_to: null, attempts: 0, progress: { value: 0, message: null },
        created_at: ev.at, updated_at: ev.at,
      };
      t.status = d.status;
      t._seq = ev.seq;
      this.tasks.set(id, t);
    } else if (t) {
      t._seq = ev.seq;
      if (STATUS_AFTER[ev.type]) t.status = STATUS_AFTER[ev.type];
      if (ev.type === "task.claimed" || ev.type === "task.assigned") t.assigned_to = d.session_id;
      if (ev.type === "task.claimed") t.attempts = d.attempt ?? t.attempts;
      if (RELEASES.has(ev.type)) t.assigned_to = null;
      if (ev.type === "task.progress") t.progress = { value: d.progress, message: d.message };
      if (ev.type === "task.input_given" && d.status) t.status = d.status;
      if (ev.type === "task.input_given" && !d.session_id) t.assigned_to = null;
      t.updated_at = ev.at;
    }
    // Events carry status, holder and progress; re-read only what they cannot fill in:
    // a new task (the event has a summary) and the task open in the detail pane.
    if (ev.type === "task.input_required") this.questions.set(id, d.question);
    if (ev.type === "task.input_given") this.questions.delete(id);
    if (ev.type === "task.added" || id === this.selected) this.dirty.tasks.add(id);
    if (ev.type !== "task.added" && ev.type !== "task.progress") this.dirty.sessions = true;
  }

  /** Tasks in queue order: active first, then by priority, then newest. */
  sortedTasks(filter) {
    const rank = (st) => TASK_ORDER.indexOf(st);
    return [...this.tasks.values()]
      .filter((t) => !filter || t.status === filter)
      .sort((a, b) => rank(a.status) - rank(b.status) || b.priority - a.priority
        || String(b.created_at).localeCompare(String(a.created_at)));
  }

  /** Emergency tasks that have not ended (the banner). */
  emergencies() {
    return [...this.tasks.values()].filter((t) => t.priority >= EMERGENCY_PRIORITY
      && !FINAL.has(t.status));
  }

  /** Tasks waiting for the operator's answer, with the question when it is known. */
  openQuestions() {
    return [...this.tasks.values()].filter((t) => t.status === "input_required")
      .map((t) => ({ task: t, question: this.questions.get(t.id) }));
  }

  /** The subtasks a task was split into, in the order they were added. */
  childrenOf(id) {
    return [...this.tasks.values()].filter((t) => t.parent_id === id)
      .sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)) || a.id.localeCompare(b.id));
  }

  /** True when task `id` lies in the split tree under task `root`. */
  below(id, root) {
    let t = id && root ? this.tasks.get(id) : null;
    for (let depth = 0; t && t.parent_id && depth < TREE_DEPTH; depth += 1) {
      if (t.parent_id === root) return true;
      t = this.tasks.get(t.parent_id);
    }
    return false;
  }

  /** The split tree under a task: [{task, children: [...]}], at most TREE_DEPTH deep. */
  splitTree(id, depth = 0) {
    if (depth >= TREE_DEPTH) return [];
    return this.childrenOf(id).map((t) => ({ task: t, children: this.splitTree(t.id, depth + 1) }));
  }

  countsByStatus() {
    const counts = Object.fromEntries(TASK_ORDER.map((st) => [st, 0]));
    for (const t of this.tasks.values()) counts[t.status] = (counts[t.status] || 0) + 1;
    return counts;
  }
}
