// The open queue as the page holds it: most urgent first, then oldest first, as the server
// orders it, kept in that order as events arrive.

export const OPEN_STATUSES = new Set(["new", "claimed", "acknowledged", "escalated"]);

/** Waiting for someone to take it: new, or escalated by the system because nobody did. */
export function unclaimed(alert) {
  return !alert.claimed_by && (alert.status === "new" || alert.status === "escalated");
}
const PRIORITY_RANK = { critical: 0, high: 1, medium: 2, low: 3 };
// Alerts known to be closed, so that a snapshot older than the event cannot bring one back.
const CLOSED_MEMORY = 2000;

export function compareAlerts(a, b) {
  return (
    (PRIORITY_RANK[a.priority] ?? 9) - (PRIORITY_RANK[b.priority] ?? 9) ||
    Date.parse(a.created_at) - Date.parse(b.created_at) ||
    a.id - b.id
  );
}

function newer(candidate, known) {
  return !known || Date.parse(candidate.updated_at) >= Date.parse(known.updated_at);
}

export class AlertQueue {
  constructor() {
    this.alerts = new Map();
    this.closed = new Map(); // id → updated_at of the closing change
    this.truncated = false;
    this.loaded = false;
  }

  has(id) {
    return this.alerts.has(id) || this.closed.has(id);
  }

  get(id) {
    return this.alerts.get(id);
  }

  /** Takes a snapshot of the open queue; answers the alerts it had not known before. */
  replace(items, truncated) {
    const fresh = [];
    const next = new Map();
    for (const item of items) {
      if (this.closedSince(item)) continue;
      const known = this.alerts.get(item.id);
      if (!known) fresh.push(item);
      next.set(item.id, newer(item, known) ? item : known);
    }
    this.alerts = next;
    this.truncated = truncated;
    this.loaded = true;
    return fresh;
  }

  /** One alert created or changed; answers whether it is open (and so in the queue). */
  apply(alert) {
    const known = this.alerts.get(alert.id);
    if (!newer(alert, known)) return OPEN_STATUSES.has(known.status);
    if (this.closedSince(alert)) return false;
    if (OPEN_STATUSES.has(alert.status)) {
      this.alerts.set(alert.id, alert);
      this.closed.delete(alert.id);
      return true;
    }
    this.alerts.delete(alert.id);
    this.closed.set(alert.id, alert.updated_at);
    if (this.closed.size > CLOSED_MEMORY) {
      this.closed.delete(this.closed.keys().next().value);
    }
    return false;
  }

  /** Known closed by a change at least as recent as this state of the alert. */
  closedSince(alert) {
    const closedAt = this.closed.get(alert.id);
    return closedAt !== undefined && Date.parse(closedAt) >= Date.parse(alert.updated_at);
  }

  sorted(category = "") {
    const items = [...this.alerts.values()].filter((a) => !category || a.category === category);
    return items.sort(compareAlerts);
  }

  unclaimedCount() {
    let n = 0;
    for (const alert of this.alerts.values()) if (unclaimed(alert)) n += 1;
    return n;
  }
}
