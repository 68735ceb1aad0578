// One alert in full: what happened, who the elder is, whom to call and in what order, the
// device, where, what has been done, recent readings; and the actions on it.
//
// The open form (a note being typed, an outcome chosen) survives updates of the same alert:
// only the header, the buttons and the information are drawn again.

import { telemetryCharts } from "./chart.js";
import { h } from "./dom.js";
import { age, clock, number } from "./format.js";
import { OUTCOMES, label, t } from "./i18n.js";
import { unclaimed } from "./queue.js";

const WORKERS = new Set(["dispatcher", "supervisor", "admin"]);
const OVERRIDERS = new Set(["supervisor", "admin"]);
const HELD = ["claimed", "acknowledged", "escalated"];
const ACTIONS = ["claim", "acknowledge", "note", "escalate", "resolve", "release"];
const FORMS = new Set(["note", "escalate", "resolve"]);

/** Whether `user` may do `action` on `alert` now (the server decides; this shapes buttons). */
export function allowed(action, alert, user) {
  if (!user || !WORKERS.has(user.role)) return false;
  const mine = alert.claimed_by === user.username || OVERRIDERS.has(user.role);
  switch (action) {
    case "claim":
      return unclaimed(alert);
    case "release":
    case "resolve":
      return HELD.includes(alert.status) && mine;
    case "acknowledge":
      return ["claimed", "escalated"].includes(alert.status) && mine;
    case "escalate":
      return ["claimed", "acknowledged"].includes(alert.status) && mine;
    case "note":
      return true;
    default:
      return false;
  }
}

export class DetailView {
  /** `onAction(action, alertId, body)` returns a promise; errors are shown here. */
  constructor(root, { onAction }) {
    this.root = root;
    this.onAction = onAction;
    this.detail = null;
    this.user = null;
    this.busy = false;
    this.header = h("header", { class: "detail-head" });
    this.bar = h("div", { class: "action-bar", role: "toolbar" });
    this.formSlot = h("div", { class: "form-slot" });
    this.message = h("p", { class: "action-error", role: "alert" });
    this.body = h("div", { class: "detail-body" });
    this.openForm = null; // {kind, node}
    this.placeholder();
  }

  placeholder() {
    this.detail = null;
    this.closeForm();
    this.root.replaceChildren(h("p", { class: "detail-placeholder" }, t("detail.placeholder")));
  }

  loading() {
    this.root.replaceChildren(h("p", { class: "detail-placeholder" }, t("detail.loading")));
  }

  get alertId() {
    return this.detail?.id ?? null;
  }

  /** Draws `detail` (the alert with its timeline, and elder, device, contacts, telemetry). */
  show(detail, user) {
    if (this.detail?.id !== detail.id) {
      this.closeForm();
      this.message.textContent = "";
    }
    this.detail = detail;
    this.user = user;
    this.header.replaceChildren(...headerOf(detail));
    this.drawBar();
    this.body.replaceChildren(...bodyOf(detail));
    if (!this.root.contains(this.body)) {
      this.root.replaceChildren(this.header, this.bar, this.formSlot, this.message, this.body);
    }
    this.root.dataset.alertId = String(detail.id);
    this.root.dataset.status = detail.status;
  }

  /** The language changed: draw again, open form included (its typed text is kept). */
  relabel() {
    if (!this.detail) {
      this.placeholder();
      return;
    }
    const open = this.openForm;
    this.show(this.detail, this.user);
    if (open) {
      const typed = open.node.querySelector("textarea")?.value ?? "";
      const outcome = open.node.querySelector("input[name=outcome]:checked")?.value;
      this.toggleForm(open.kind, true);
      const node = this.openForm.node;
      node.querySelector("textarea").value = typed;
      if (outcome) node.querySelector(`input[value="${outcome}"]`).checked = true;
    }
  }

  drawBar() {
    const detail = this.detail;
    const worker = this.user && WORKERS.has(this.user.role);
    const buttons = ACTIONS.map((action) =>
      h(
        "button",
        {
          type: "button",
          class: `action action-${action}`,
          dataset: { action },
          disabled: this.busy || !allowed(action, detail, this.user),
          "aria-expanded": FORMS.has(action) ? String(this.openForm?.kind === action) : null,
          onclick: () => this.press(action),
        },
        t(`action.${action}`),
      ),
    );
    this.bar.setAttribute("aria-label", t("detail.actions"));
    const hint = worker ? [] : [h("span", { class: "read-only" }, t("action.read_only"))];
    this.bar.replaceChildren(...buttons, ...hint);
  }

  press(action) {
    if (FORMS.has(action)) {
      this.toggleForm(action, this.openForm?.kind !== action);
      return;
    }
    this.run(action, undefined);
  }

  toggleForm(kind, open) {
    this.closeForm();
    if (open) {
      const node = formOf(kind, {
        onSubmit: (body) => this.run(kind, body),
        onCancel: () => {
          this.closeForm();
          this.drawBar();
          this.bar.querySelector(`[data-action="${kind}"]`)?.focus();
        },
      });
      this.openForm = { kind, node };
      this.formSlot.replaceChildren(node);
      node.querySelector("textarea, input")?.focus();
    }
    this.drawBar();
  }

  closeForm() {
    this.openForm = null;
    this.formSlot.replaceChildren();
  }

  async run(action, body) {
    if (this.busy || !this.detail) return;
    this.busy = true;
    this.message.textContent = "";
    this.drawBar();
    const alertId = this.detail.id;
    try {
      await this.onAction(action, alertId, body);
      if (FORMS.has(action)) this.closeForm();
    } catch (error) {
      this.message.textContent = errorText(error);
    } finally {
      this.busy = false;
      if (this.detail) this.drawBar();
    }
  }
}

function errorText(error) {
  const detail = Array.isArray(error.detail)
    ? error.detail.map((d) => d.msg ?? JSON.stringify(d)).join("; ")
    : String(error.detail ?? error.message);
  if (error.status === 409) return t("error.conflict") + detail;
  if (error.status === 403) return t("error.forbidden") + detail;
  return t("error.generic") + detail;
}

function headerOf(alert) {
  return [
    h(
      "h2",
      { class: `detail-title cat-${alert.category}` },
      h("span", {}, label("type", alert.type)),
      h("span", { class: `badge prio prio-${alert.priority}` }, label("priority", alert.priority)),
      h("span", { class: "badge cat" }, label("category", alert.category)),
      h("span", { class: `badge status status-${alert.status}` }, label("status", alert.status)),
    ),
    h(
      "dl",
      { class: "facts inline" },
      fact(
        t("detail.created"),
        t("detail.when", { time: clock(alert.created_at), age: age(alert.created_at) }),
      ),
      fact(t("detail.count"), String(alert.count)),
      alert.claimed_by ? fact(t("detail.held_by"), alert.claimed_by) : null,
      alert.attributes?.trigger
        ? fact(t("detail.trigger"), label("trigger", alert.attributes.trigger))
        : null,
      alert.outcome ? fact(t("action.outcome"), label("outcome", alert.outcome)) : null,
      alert.attributes?.payload_error
        ? fact(t("detail.payload_error"), alert.attributes.payload_error)
        : null,
    ),
  ];
}

function bodyOf(detail) {
  return [
    h(
      "div",
      { class: "detail-columns" },
      h("div", { class: "detail-column" }, elderSection(detail), contactsSection(detail)),
      h(
        "div",
        { class: "detail-column" },
        locationSection(detail),
        deviceSection(detail),
        telemetrySection(detail),
      ),
    ),
    timelineSection(detail),
  ];
}

function section(titleKey, className, ...content) {
  return h(
    "section",
    { class: `panel ${className}`, "aria-label": t(titleKey) },
    h("h3", {}, t(titleKey)),
    ...content,
  );
}

function fact(term, value) {
  if (value === null || value === undefined || value === "") return null;
  return h("div", { class: "fact" }, h("dt", {}, term), h("dd", {}, value));
}

function phoneLink(phone) {
  return phone ? h("a", { href: `tel:${phone}`, class: "phone" }, phone) : null;
}

function elderSection(detail) {
  const elder = detail.elder;
  if (!elder) {
    const unregistered = detail.attributes?.unregistered_device;
    return section(
      "detail.elder",
      "elder",
      h("p", { class: "muted" }, t(unregistered ? "detail.unregistered" : "detail.no_elder")),
    );
  }
  const categories = elder.categories ?? [];
  return section(
    "detail.elder",
    "elder",
    h("p", { class: "elder-name" }, elder.name),
    categories.length
      ? h(
          "ul",
          { class: "chips", "aria-label": t("detail.categories") },
          categories.map((c) => h("li", { class: "chip" }, label("elder_category", c))),
        )
      : null,
    h(
      "dl",
      { class: "facts" },
      fact(t("detail.phone"), phoneLink(elder.phone)),
      fact(t("detail.address"), elder.address),
      fact(t("detail.community"), elder.community),
      fact(t("detail.medical_notes"), elder.medical_notes),
      fact(t("detail.key_safe_note"), elder.key_safe_note),
      fact(t("detail.notes"), elder.notes),
    ),
  );
}

function contactsSection(detail) {
  const contacts = [...(detail.contacts ?? [])].sort(
    (a, b) => (a.position ?? 0) - (b.position ?? 0),
  );
  return section(
    "detail.contacts",
    "contacts",
    contacts.length
      ? h(
          "ol",
          { class: "contact-list" },
          contacts.map((c) =>
            h(
              "li",
              {},
              h("span", { class: "contact-name" }, c.name),
              h(
                "span",
                { class: "contact-relation" },
                c.label || label("relation", c.relation ?? "other"),
              ),
              phoneLink(c.phone),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("detail.no_contacts")),
  );
}

function locationSection(detail) {
  const where = detail.location;
  let text = null;
  if (where?.room) text = where.room;
  else if (typeof where?.lat === "number" && typeof where?.lon === "number") {
    text = `${where.lat.toFixed(5)}, ${where.lon.toFixed(5)}`;
    if (typeof where.accuracy_m === "number") {
      text += ` (${t("detail.accuracy", { m: number(where.accuracy_m, 0) })})`;
    }
  }
  return section(
    "detail.location",
    "location",
    h("p", { class: text ? "location-text" : "muted" }, text ?? t("detail.no_location")),
  );
}

function deviceSection(detail) {
  const device = detail.device;
  const id = device?.device_id ?? device?.id ?? detail.device_id;
  const online =
    typeof device?.online === "boolean" ? t(device.online ? "detail.online" : "detail.offline") : "";
  return section(
    "detail.device",
    "device",
    h(
      "dl",
      { class: "facts" },
      fact(t("detail.device_id"), id),
      fact(t("detail.model"), device?.model),
      fact(t("detail.room"), device?.room),
      fact(
        t("detail.battery"),
        typeof device?.battery === "number" ? `${number(device.battery, 0)}%` : null,
      ),
      fact(
        t("detail.last_seen"),
        device?.last_seen_at ? `${clock(device.last_seen_at)} ${online}` : online,
      ),
    ),
  );
}

function telemetrySection(detail) {
  const charts = telemetryCharts(detail.telemetry ?? []);
  return section(
    "detail.telemetry",
    "telemetry",
    charts.length ? h("div", { class: "charts" }, charts) : h("p", { class: "muted" }, t("detail.no_telemetry")),
  );
}

function timelineSection(detail) {
  const entries = detail.timeline ?? [];
  return section(
    "detail.timeline",
    "timeline",
    h(
      "ol",
      { class: "timeline-list" },
      entries.map((entry) =>
        h(
          "li",
          { dataset: { action: entry.action } },
          h("time", { datetime: entry.at }, clock(entry.at)),
          h("span", { class: "timeline-action" }, label("timeline", entry.action)),
          h("span", { class: "timeline-actor" }, entry.actor),
          h("span", { class: "timeline-detail" }, describe(entry)),
        ),
      ),
    ),
  );
}

function describe(entry) {
  const d = entry.detail ?? {};
  switch (entry.action) {
    case "note":
      return d.text ?? "";
    case "escalated":
    case "cancelled":
    case "auto_resolved":
    case "contacts_not_notified":
      return d.reason ?? "";
    case "escalation_reminder":
      return d.reminder ? `${d.reminder}/${d.of ?? "?"}` : "";
    case "notified":
    case "notify_failed":
      return [d.channel, d.error].filter(Boolean).join(" · ");
    case "resolved":
      return [d.outcome ? label("outcome", d.outcome) : "", d.note ?? ""].filter(Boolean).join(" · ");
    case "coalesced":
      return d.count ? t("queue.times", { n: d.count }) : "";
    case "released":
      return d.holder ?? "";
    case "device_not_told":
      return d.reason ?? "";
    case "created":
      return d.trigger ? label("trigger", d.trigger) : "";
    default:
      return "";
  }
}

let formSeq = 0;

function formOf(kind, { onSubmit, onCancel }) {
  formSeq += 1;
  const textId = `form-${kind}-${formSeq}`;
  const textKey = { note: "action.note_text", escalate: "action.escalate_reason", resolve: "action.resolve_note" }[kind];
  const maxLength = kind === "escalate" ? 500 : 2000;
  const text = h("textarea", {
    id: textId,
    name: "text",
    rows: 2,
    maxlength: maxLength,
    required: kind !== "resolve",
  });
  const outcomes =
    kind === "resolve"
      ? h(
          "fieldset",
          { class: "outcomes" },
          h("legend", {}, t("action.outcome")),
          OUTCOMES.map((outcome, index) =>
            h(
              "label",
              { class: "outcome" },
              h("input", {
                type: "radio",
                name: "outcome",
                value: outcome,
                required: index === 0,
              }),
              label("outcome", outcome),
            ),
          ),
        )
      : null;
  const form = h(
    "form",
    {
      class: `action-form form-${kind}`,
      dataset: { form: kind },
      onsubmit: (event) => {
        event.preventDefault();
        const value = text.value.trim();
        if (kind === "note") onSubmit({ text: value });
        else if (kind === "escalate") onSubmit({ reason: value });
        else {
          const chosen = form.querySelector("input[name=outcome]:checked");
          onSubmit({ outcome: chosen.value, note: value || null });
        }
      },
      onkeydown: (event) => {
        if (event.key === "Escape") onCancel();
      },
    },
    outcomes,
    h("label", { for: textId }, t(textKey)),
    text,
    h(
      "div",
      { class: "form-buttons" },
      h("button", { type: "submit", class: "primary" }, t(`action.submit_${kind}`)),
      h("button", { type: "button", onclick: onCancel }, t("action.cancel")),
    ),
  );
  return form;
}
