// The elder's page (admin.js) gains the elder's home visits: when each was due, why, its state,
// who went and what they found, newest first.

import { registerElderSection } from "./admin.js";
import { h } from "./dom.js";
import { label, t } from "./i18n.js";

registerElderSection(async (elder, api) => {
  const { visits } = await api.get(`elders/${elder.id}/visits`);
  const rows = [...visits].reverse().map((v) =>
    h(
      "tr",
      { dataset: { visitId: v.id } },
      h("td", {}, new Date(v.due_at).toLocaleString()),
      h("td", {}, label("visit_reason", v.reason)),
      h("td", {}, v.overdue ? t("visit.overdue") : label("visit_status", v.status)),
      h("td", {}, v.assignee ?? "—"),
      h("td", {}, v.outcome ? label("visit_outcome", v.outcome) : "—"),
    ),
  );
  const headings = ["admin.visit_due", "admin.visit_reason", "admin.visit_status",
    "admin.visit_assignee", "visit.outcome"]; // prettier-ignore
  return h(
    "div",
    { id: "elder-visits" },
    h("h3", {}, t("admin.visits")),
    h(
      "table",
      { class: "admin-table" },
      h("thead", {}, h("tr", {}, headings.map((key) => h("th", {}, t(key))))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5 }, t("admin.empty")))),
    ),
  );
});
