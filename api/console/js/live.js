// Keeping the queue current. The alert stream (Server-Sent Events) when it works; polling the
// queue every 2 s when it does not (a server without the stream, a proxy that breaks SSE),
// until the stream can be opened again. Every (re)connection starts with a full snapshot, so
// nothing missed while away stays missed.

export const POLL_MS = 2000;
// A stream the server refused (404, 401) is tried again this often, polling meanwhile.
const STREAM_RETRY_MS = 30000;
// Even while the stream is open, a snapshot this often: a proxy that holds events back
// cannot hide an alert for longer.
const SAFETY_SNAPSHOT_MS = 30000;
// The queue page size, and how many pages at most (the page shows at most 1000 alerts).
const PAGE = 200;
const MAX_PAGES = 5;

export class LiveQueue {
  /**
   * onSnapshot(items, truncated): the whole open queue; onChange(alert, eventName): one alert
   * created or updated; onMode("live" | "polling" | "offline").
   */
  constructor({ api, onSnapshot, onChange, onMode }) {
    this.api = api;
    this.onSnapshot = onSnapshot;
    this.onChange = onChange;
    this.onMode = onMode;
    this.source = null;
    this.pollTimer = null;
    this.retryTimer = null;
    this.safetyTimer = null;
    this.polling = false;
    this.stopped = false;
    this.mode = null;
  }

  start() {
    this.openStream();
    this.safetyTimer = setInterval(() => {
      if (this.mode === "live") this.snapshot();
    }, SAFETY_SNAPSHOT_MS);
  }

  stop() {
    this.stopped = true;
    this.source?.close();
    this.source = null;
    clearTimeout(this.pollTimer);
    clearTimeout(this.retryTimer);
    clearInterval(this.safetyTimer);
  }

  openStream() {
    if (this.stopped) return;
    if (typeof EventSource === "undefined") {
      this.startPolling();
      return;
    }
    const source = new EventSource(this.api.streamUrl());
    this.source = source;
    source.addEventListener("open", () => {
      this.polling = false;
      clearTimeout(this.pollTimer);
      this.setMode("live");
      this.snapshot();
    });
    for (const name of ["alert.created", "alert.updated"]) {
      source.addEventListener(name, (event) => this.receive(name, event));
    }
    // A resumed stream that was too far behind skipped events: read the whole queue again.
    source.addEventListener("alerts.resync", () => this.snapshot());
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (not found, not allowed, not an event stream): the browser gives up.
        source.close();
        if (this.source === source) this.source = null;
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.openStream(), STREAM_RETRY_MS);
      }
      // Otherwise the browser reconnects by itself (with Last-Event-ID); poll meanwhile.
      this.startPolling();
    });
  }

  receive(name, event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return; // not ours to understand; the next snapshot has the truth
    }
    if (data && typeof data.alert === "object" && data.alert !== null) {
      this.onChange(data.alert, name, data.event ?? null);
    }
  }

  startPolling() {
    if (this.polling || this.stopped) return;
    this.polling = true;
    this.poll();
  }

  async poll() {
    if (!this.polling || this.stopped) return;
    const ok = await this.snapshot();
    if (!this.polling || this.stopped) return;
    this.setMode(ok ? "polling" : "offline");
    this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
  }

  /** Fetches the open queue (up to MAX_PAGES pages) and hands it over; false on failure. */
  async snapshot() {
    try {
      const items = [];
      let cursor = null;
      let pages = 0;
      do {
        const query = new URLSearchParams({ status: "open", limit: String(PAGE) });
        if (cursor) query.set("cursor", cursor);
        const page = await this.api.get(`alerts?${query}`);
        items.push(...page.items);
        cursor = page.next_cursor;
        pages += 1;
      } while (cursor && pages < MAX_PAGES);
      if (!this.stopped) this.onSnapshot(items, Boolean(cursor));
      return true;
    } catch {
      return false;
    }
  }

  setMode(mode) {
    if (mode === this.mode) return;
    this.mode = mode;
    this.onMode(mode);
  }
}
