// The event stream: WS /swarm/realtime, resumed with ?after= on every reconnect so the page
// never misses or repeats an event. The token travels as a subprotocol ("bearer.<token>")
// so it is not in the request line; tokens that cannot be one fall back to ?token=.

const SUBPROTOCOL_SAFE = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const CLOSE_TOO_SLOW = 4001;
const CLOSE_AFTER_AHEAD = 4002;

export class LiveStream {
  /**
   * onEvent(event): one Event, in seq order, each once.
   * onState(state, failures): "connecting" | "live" | "reconnecting", and how many
   * handshakes in a row failed (a bad token, or the server is down).
   * onResync(): the server's log no longer has our position (a replaced store).
   */
  constructor(token, { onEvent, onState, onResync }) {
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onResync = onResync;
    this.last = 0;
    this.ws = null;
    this.delay = 500;
    this.failures = 0;
    this.wasLive = false;
    this.timer = null;
    this.stopped = false;
  }

  start(after) {
    this.last = after;
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000);
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams({ after: String(this.last) });
    if (!SUBPROTOCOL_SAFE.test(this.token)) q.set("token", this.token);
    return `${proto}//${location.host}/swarm/realtime?${q}`;
  }

  open() {
    this.onState(this.failures || this.wasLive ? "reconnecting" : "connecting", 0);
    const protocols = SUBPROTOCOL_SAFE.test(this.token) ? ["swarm", `bearer.${this.token}`] : [];
    const ws = new WebSocket(this.url(), protocols);
    let opened = false;
    this.ws = ws;
    ws.onopen = () => {
      opened = true;
      this.wasLive = true;
      this.failures = 0;
      this.delay = 500;
      this.onState("live");
    };
    ws.onmessage = (msg) => {
      const ev = JSON.parse(msg.data);
      if (ev.seq <= this.last) return; // belt and braces: the server already dedupes
      this.last = ev.seq;
      this.onEvent(ev);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws || this.stopped) return;
      if (e.code === CLOSE_AFTER_AHEAD) {
        this.onResync();
        return;
      }
      this.failures = opened ? 0 : this.failures + 1;
      this.onState("reconnecting", this.failures);
      const wait = e.code === CLOSE_TOO_SLOW ? 0 : this.delay;
      this.delay = Math.min(this.delay * 2, 10000);
      this.timer = setTimeout(() => this.open(), wait);
    };
  }
}
