// The administration pages (admins): users, elders with their contacts and devices, the CSV
// import with its per-row report, the audit; and the elder's page (profile, devices and their
// state, alerts over time). Reached by `#admin/...`; the queue stays as it is underneath.

import { clear, h } from "./dom.js";
import { label, t } from "./i18n.js";

const ROLES = ["dispatcher", "supervisor", "admin", "engineer", "visitor"];
const RELATIONS = ["family", "neighbour", "community_worker", "other"];

// Other parts of the console may add a section to the elder's page (the visits, issue #16):
// `registerElderSection((elder, api) => Node | Promise<Node>)`, drawn below the alerts.
const elderSections = [];
export function registerElderSection(render) {
  elderSections.push(render);
}

/**
 * For an admin: the 管理 button, and `#admin/...` shows these pages in place of the queue
 * (which keeps running underneath). Returns what signing out stops.
 */
export function mountAdmin(api, user) {
  const button = document.getElementById("admin-open");
  const view = document.getElementById("admin-view");
  const queue = document.getElementById("console-view");
  if (user.role !== "admin") return { stop() {} };
  const pages = new AdminPages(view, api, user);
  const route = () => {
    const on = location.hash.startsWith("#admin");
    view.hidden = !on;
    queue.hidden = on;
    if (on) pages.show(location.hash);
  };
  const relabel = () => {
    button.textContent = t("admin.open");
    if (!view.hidden) pages.show(location.hash);
  };
  const open = () => {
    location.hash = "#admin/users";
  };
  const lang = document.getElementById("lang-toggle");
  button.hidden = false;
  button.textContent = t("admin.open");
  button.addEventListener("click", open);
  window.addEventListener("hashchange", route);
  lang.addEventListener("click", relabel);
  route();
  return {
    stop() {
      button.hidden = true;
      view.hidden = true;
      clear(view);
      button.removeEventListener("click", open);
      window.removeEventListener("hashchange", route);
      lang.removeEventListener("click", relabel);
    },
  };
}

export class AdminPages {
  constructor(root, api, user) {
    this.root = root;
    this.api = api;
    this.user = user;
  }

  /** Draws the page the hash names (`#admin/users`, `#admin/elder/3`…). */
  async show(hash) {
    const [, page = "users", id] = hash.replace(/^#/, "").split("/");
    clear(this.root);
    const body = h("div", { class: "admin-body" });
    this.root.append(this.tabs(page), body);
    try {
      if (page === "elders") await this.elders(body);
      else if (page === "elder") await this.elder(body, Number(id));
      else if (page === "import") this.importer(body);
      else if (page === "audit") await this.audit(body);
      else await this.users(body);
    } catch (error) {
      body.append(failure(error));
    }
  }

  tabs(current) {
    const tab = (page) =>
      h(
        "a",
        {
          href: `#admin/${page}`,
          class: current === page || (current === "elder" && page === "elders") ? "tab on" : "tab",
          dataset: { tab: page },
        },
        t(`admin.tab.${page}`),
      );
    return h(
      "nav",
      { class: "admin-tabs" },
      h("a", { href: "#", class: "tab back" }, t("admin.back")),
      ["users", "elders", "import", "audit"].map(tab),
    );
  }

  // Users.

  async users(body) {
    const page = await this.api.get("users?limit=500");
    const redraw = () => this.show("#admin/users");
    const rows = page.items.map((user) =>
      h(
        "tr",
        { dataset: { username: user.username } },
        h("td", {}, user.username),
        h("td", {}, roleSelect(user.role, (role) => this.change(user, { role }, redraw))),
        h("td", {}, user.scope || t("admin.scope.all")),
        h("td", {}, user.active ? t("admin.enabled") : t("admin.disabled")),
        h(
          "td",
          {},
          h(
            "button",
            {
              type: "button",
              class: "toggle-active",
              onclick: () => this.change(user, { active: !user.active }, redraw),
            },
            user.active ? t("admin.disable") : t("admin.enable"),
          ),
          " ",
          h(
            "button",
            { type: "button", class: "reset-password", onclick: () => this.resetPassword(user) },
            t("admin.reset_password"),
          ),
        ),
      ),
    );
    const form = h(
      "form",
      { class: "admin-form", id: "new-user" },
      h("h3", {}, t("admin.create_user")),
      field("username", t("admin.username")),
      field("password", t("admin.password"), "password"),
      h("label", {}, t("admin.role"), roleSelect("dispatcher", null, "role")),
      field("scope", t("admin.scope"), "text", "张家口市/张北县"),
      h("button", { type: "submit", class: "primary" }, t("admin.create")),
      h("p", { class: "admin-status", role: "status" }),
    );
    form.addEventListener("submit", (event) =>
      submit(event, form, () => this.api.post("users", values(form)), redraw),
    );
    body.append(
      table([t("admin.username"), t("admin.role"), t("admin.scope"), t("admin.active"),
        t("admin.actions")], rows, "users-table"), // prettier-ignore
      form,
    );
  }

  async change(user, patch, done) {
    try {
      await this.api.patch(`users/${user.id}`, patch);
      done();
    } catch (error) {
      this.root.append(failure(error));
    }
  }

  async resetPassword(user) {
    const password = window.prompt(t("admin.new_password"));
    if (!password) return;
    try {
      await this.api.post(`users/${user.id}/password`, { password });
      this.root.append(h("p", { class: "admin-status", role: "status" }, t("admin.password_reset")));
    } catch (error) {
      this.root.append(failure(error));
    }
  }

  // Elders.

  async elders(body) {
    const page = await this.api.get("elders?limit=500");
    const rows = page.items.map((elder) =>
      h(
        "tr",
        { dataset: { elderId: elder.id } },
        h("td", {}, h("a", { href: `#admin/elder/${elder.id}` }, elder.name)),
        h("td", {}, elder.community ?? ""),
        h("td", {}, elder.phone ?? ""),
        h("td", {}, elder.contacts.length),
      ),
    );
    const form = h(
      "form",
      { class: "admin-form", id: "new-elder" },
      h("h3", {}, t("admin.create_elder")),
      field("name", t("admin.name")),
      field("community", t("admin.community"), "text", "张家口市/张北县/花园街道/幸福社区"),
      field("phone", t("admin.phone")),
      field("address", t("admin.address")),
      h("button", { type: "submit", class: "primary" }, t("admin.create")),
      h("p", { class: "admin-status", role: "status" }),
    );
    form.addEventListener("submit", (event) =>
      submit(
        event,
        form,
        () => this.api.post("elders", values(form)),
        (elder) => {
          location.hash = `#admin/elder/${elder.id}`;
        },
      ),
    );
    body.append(
      table([t("admin.name"), t("admin.community"), t("admin.phone"), t("admin.contacts")], rows,
        "elders-table"), // prettier-ignore
      form,
    );
  }

  async elder(body, elderId) {
    const [elder, devices, alerts] = await Promise.all([
      this.api.get(`elders/${elderId}`),
      this.api.get(`devices?elder_id=${elderId}&limit=500`),
      this.api.get(`alerts?status=all&elder_id=${elderId}&limit=200`),
    ]);
    const redraw = () => this.show(`#admin/elder/${elderId}`);
    body.append(
      h("h2", { class: "elder-name" }, elder.name),
      this.profile(elder),
      this.contacts(elder, redraw),
      this.devices(elder, devices.items, redraw),
      alertsOverTime(alerts.items),
    );
    for (const render of elderSections) {
      body.append(h("section", { class: "admin-card", dataset: { hook: "elder-section" } },
        await render(elder, this.api))); // prettier-ignore
    }
  }

  profile(elder) {
    const row = (name, value) => [h("dt", {}, name), h("dd", {}, value ?? "—")];
    return h(
      "section",
      { class: "admin-card", id: "elder-profile" },
      h("h3", {}, t("admin.profile")),
      h(
        "dl",
        { class: "facts" },
        row(t("admin.community"), elder.community),
        row(t("admin.phone"), elder.phone),
        row(t("admin.address"), elder.address),
        row(t("detail.categories"), elder.categories.map((c) => label("elder_category", c)).join("、")),
        row(t("detail.medical_notes"), elder.medical_notes),
        row(t("detail.key_safe_note"), elder.key_safe_note),
      ),
    );
  }

  contacts(elder, redraw) {
    const kept = elder.contacts.map(({ name, phone, relation, label: word }) => ({
      name, phone, relation, ...(word ? { label: word } : {}),
    })); // prettier-ignore
    const save = (contacts) =>
      this.api.patch(`elders/${elder.id}`, { contacts }).then(redraw, (e) => this.root.append(failure(e)));
    const rows = elder.contacts.map((c, i) =>
      h(
        "tr",
        {},
        h("td", {}, c.position),
        h("td", {}, c.name),
        h("td", {}, c.phone),
        h("td", {}, c.label || label("relation", c.relation)),
        h("td", {}, h("button", { type: "button", onclick: () => save(kept.filter((_, j) => j !== i)) },
          t("admin.remove"))), // prettier-ignore
      ),
    );
    const form = h(
      "form",
      { class: "admin-form inline", id: "new-contact" },
      field("name", t("admin.name")),
      field("phone", t("admin.phone")),
      h("label", {}, t("admin.relation"), select("relation", RELATIONS, "family", (r) => label("relation", r))),
      h("button", { type: "submit" }, t("admin.add_contact")),
      h("p", { class: "admin-status", role: "status" }),
    );
    form.addEventListener("submit", (event) =>
      submit(event, form, () => this.api.patch(`elders/${elder.id}`, { contacts: [...kept, values(form)] }), redraw),
    );
    return h(
      "section",
      { class: "admin-card", id: "elder-contacts" },
      h("h3", {}, t("admin.contacts")),
      table(["#", t("admin.name"), t("admin.phone"), t("admin.relation"), ""], rows, "contacts-table"),
      form,
    );
  }

  devices(elder, devices, redraw) {
    const rows = devices.map((d) =>
      h(
        "tr",
        { dataset: { deviceId: d.id } },
        h("td", {}, d.id),
        h("td", {}, d.model),
        h("td", {}, d.room ?? ""),
        h("td", {}, label("device_status", d.status)),
        h("td", {}, d.online === null ? t("admin.unknown") : d.online ? t("admin.online") : t("admin.offline")),
        h("td", {}, d.battery === null ? "—" : `${Math.round(d.battery)}%`),
        h("td", {}, d.last_seen_at ? new Date(d.last_seen_at).toLocaleString() : "—"),
        h("td", {}, d.status === "retired" ? "" : h("button", { type: "button", class: "retire",
          onclick: () => this.api.patch(`devices/${encodeURIComponent(d.id)}`, { status: "retired" })
            .then(redraw, (e) => this.root.append(failure(e))) }, t("admin.retire"))), // prettier-ignore
      ),
    );
    const form = h(
      "form",
      { class: "admin-form inline", id: "bind-device" },
      field("id", t("admin.device_id")),
      field("model", t("admin.model"), "text", null, "sos-pendant"),
      field("room", t("admin.room")),
      h("button", { type: "submit" }, t("admin.bind_device")),
      h("p", { class: "admin-status", role: "status" }),
    );
    form.addEventListener("submit", (event) =>
      submit(event, form, () => this.bind(elder, values(form)), redraw),
    );
    return h(
      "section",
      { class: "admin-card", id: "elder-devices" },
      h("h3", {}, t("admin.devices")),
      table([t("admin.device_id"), t("admin.model"), t("admin.room"), t("admin.status"),
        t("admin.online"), t("admin.battery"), t("admin.last_seen"), ""], rows, "devices-table"), // prettier-ignore
      form,
    );
  }

  /** A device of the registry is bound (PATCH); a new one is registered to the elder (POST). */
  async bind(elder, device) {
    try {
      return await this.api.patch(`devices/${encodeURIComponent(device.id)}`, { elder_id: elder.id });
    } catch (error) {
      if (error.status !== 404) throw error;
      return this.api.post("devices", { ...device, elder_id: elder.id });
    }
  }

  // The import.

  importer(body) {
    const input = h("input", { type: "file", name: "file", accept: ".csv,text/csv", required: true });
    const report = h("div", { id: "import-report" });
    const form = h(
      "form",
      { class: "admin-form", id: "import-form" },
      h("h3", {}, t("admin.import_title")),
      input,
      h("button", { type: "submit", class: "primary" }, t("admin.upload")),
      h("p", { class: "admin-status", role: "status" }),
    );
    form.addEventListener("submit", (event) =>
      submit(event, form, () => this.api.upload("devices/import", input.files[0]), (result) =>
        report.replaceChildren(importReport(result)),
      ),
    );
    body.append(form, report);
  }

  // The audit.

  async audit(body) {
    const page = await this.api.get("audit?limit=200");
    const rows = page.items.map((e) =>
      h(
        "tr",
        {},
        h("td", {}, new Date(e.at).toLocaleString()),
        h("td", {}, e.actor),
        h("td", {}, e.action),
        h("td", {}, e.target),
        h("td", { class: "audit-detail" }, JSON.stringify(e.detail)),
      ),
    );
    body.append(
      table([t("admin.at"), t("admin.actor"), t("admin.action"), t("admin.target"), t("admin.detail")],
        rows, "audit-table"), // prettier-ignore
    );
  }
}

function alertsOverTime(alerts) {
  const months = new Map();
  for (const alert of alerts) {
    const month = alert.created_at.slice(0, 7);
    months.set(month, (months.get(month) ?? 0) + 1);
  }
  const most = Math.max(1, ...months.values());
  const bars = [...months.entries()].sort().map(([month, n]) => {
    const bar = h("span", { class: "bar" });
    bar.style.width = `${(100 * n) / most}%`; // CSSOM, which the page's CSP allows
    return h("li", {}, h("span", { class: "month" }, month), bar, h("span", {}, n));
  });
  const rows = alerts.map((a) =>
    h(
      "tr",
      { dataset: { alertId: a.id } },
      h("td", {}, new Date(a.created_at).toLocaleString()),
      h("td", {}, label("type", a.type)),
      h("td", {}, label("status", a.status)),
      h("td", {}, a.device_id),
    ),
  );
  return h(
    "section",
    { class: "admin-card", id: "elder-alerts" },
    h("h3", {}, t("admin.alerts_over_time")),
    alerts.length === 0
      ? h("p", {}, t("admin.no_alerts"))
      : [
          h("h4", {}, t("admin.alerts_by_month")),
          h("ol", { class: "month-bars" }, bars),
          table([t("admin.at"), t("admin.type"), t("admin.status"), t("admin.device_id")], rows,
            "alerts-table"), // prettier-ignore
        ],
  );
}

function importReport(result) {
  const lines = (title, problems, kind) =>
    problems.length === 0
      ? null
      : [
          h("h4", {}, title),
          table([t("admin.line"), t("admin.message")],
            problems.map((p) => h("tr", { class: kind }, h("td", {}, p.line), h("td", {}, p.message))),
            `import-${kind}`), // prettier-ignore
        ];
  return h(
    "section",
    { class: "admin-card" },
    h("h3", {}, t("admin.report")),
    h("p", { class: "import-summary" }, t("admin.report.summary", result)),
    lines(t("admin.errors"), result.errors, "errors"),
    lines(t("admin.warnings"), result.warnings, "warnings"),
  );
}

function table(headings, rows, id) {
  return h(
    "table",
    { class: "admin-table", id },
    h("thead", {}, h("tr", {}, headings.map((name) => h("th", {}, name)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headings.length }, t("admin.empty")))),
  );
}

function field(name, text, type = "text", placeholder = null, value = null) {
  return h("label", {}, text, h("input", { name, type, placeholder, value, autocomplete: "off" }));
}

function select(name, options, chosen, text, onchange = null) {
  const el = h(
    "select",
    { name },
    options.map((o) => h("option", { value: o, selected: o === chosen }, text(o))),
  );
  if (onchange) el.addEventListener("change", () => onchange(el.value));
  return el;
}

function roleSelect(chosen, onchange, name = "role") {
  return select(name, ROLES, chosen, (r) => label("role", r), onchange);
}

/** The form's filled fields as a JSON body (empty ones left out: the API's defaults apply). */
function values(form) {
  const body = {};
  for (const [name, value] of new FormData(form).entries()) {
    if (typeof value === "string" && value.trim() !== "") body[name] = value.trim();
  }
  return body;
}

async function submit(event, form, send, done) {
  event.preventDefault();
  const status = form.querySelector(".admin-status");
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  status.textContent = "";
  try {
    const result = await send();
    status.textContent = t("admin.saved");
    done(result);
  } catch (error) {
    status.textContent = t("admin.failed", { detail: describe(error) });
  } finally {
    button.disabled = false;
  }
}

function describe(error) {
  const detail = error.detail;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc ?? []).slice(1).join(".")}: ${d.msg}`).join("; ");
  return typeof detail === "string" ? detail : String(error.message ?? error);
}

function failure(error) {
  return h("p", { class: "admin-error", role: "alert" }, t("admin.failed", { detail: describe(error) }));
}
