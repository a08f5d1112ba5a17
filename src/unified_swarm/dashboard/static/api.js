// The operator token and the REST calls. The token comes from the link `swarm server`
// prints (#token=..., a fragment: never sent to the server, never in a log) or from the
// login form, and lives in localStorage. Every call sends it as a Bearer header.

const KEY = "swarm.token";

export class AuthError extends Error {}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Take a token from the URL fragment (then drop it from the address bar), else storage. */
export function loadToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  const fromLink = params.get("token");
  if (fromLink) {
    localStorage.setItem(KEY, fromLink);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return localStorage.getItem(KEY);
}

export function saveToken(token) {
  localStorage.setItem(KEY, token);
}

export function forgetToken() {
  localStorage.removeItem(KEY);
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async call(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    if (res.status === 401) throw new AuthError("the operator token was refused");
    if (res.status === 204) return null;
    const data = await res.json().catch(() => ({}));
    if (!res.ok) {
      const err = data.error || {};
      throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || res.statusText);
    }
    return data;
  }

  status() { return this.call("GET", "/swarm/status"); }
  sessions() { return this.call("GET", "/sessions"); }
  knowledge() { return this.call("GET", "/knowledge"); }
  scaling() { return this.call("GET", "/swarm/scaling"); }
  task(id) { return this.call("GET", `/work/${encodeURIComponent(id)}`); }
  addTask(spec) { return this.call("POST", "/work", spec); }
  answer(id, answer) { return this.call("POST", `/work/${encodeURIComponent(id)}/input`, { answer }); }
  cancel(id, reason) { return this.call("POST", `/work/${encodeURIComponent(id)}/cancel`, { reason }); }

  /** Every task, page by page, up to `max`. */
  async tasks(max = 5000) {
    const out = [];
    let cursor = null;
    while (out.length < max) {
      const q = new URLSearchParams({ limit: "1000" });
      if (cursor) q.set("cursor", cursor);
      const page = await this.call("GET", `/work?${q}`);
      out.push(...page.tasks);
      cursor = page.next_cursor;
      if (!cursor || page.tasks.length === 0) break;
    }
    return out;
  }
}
