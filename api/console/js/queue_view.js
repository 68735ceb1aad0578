// The queue on the page: one row per open alert, coloured by category, most urgent on top.
// Each row is a button that opens the alert; an alert nobody holds has its own "claim" button,
// so taking a call is one click.

import { h } from "./dom.js";
import { age } from "./format.js";
import { label, t } from "./i18n.js";
import { unclaimed } from "./queue.js";

/**
 * Draws `alerts` (already sorted) into `list`. `elderOf(id)` answers a known elder or null.
 * `canClaim` says whether this user works alerts. Focus stays on the row that had it.
 */
export function renderQueue(list, alerts, { selectedId, elderOf, canClaim, onSelect, onClaim }) {
  const focused = document.activeElement;
  const focusKey =
    focused && list.contains(focused)
      ? { id: focused.dataset.alertId, role: focused.dataset.role }
      : null;
  const now = Date.now();
  list.replaceChildren(
    ...alerts.map((alert) =>
      row(alert, {
        now,
        selected: alert.id === selectedId,
        elder: alert.elder ?? (alert.elder_id == null ? null : elderOf(alert.elder_id)),
        canClaim,
        onSelect,
        onClaim,
      }),
    ),
  );
  if (focusKey) {
    const again =
      list.querySelector(`[data-alert-id="${focusKey.id}"][data-role="${focusKey.role}"]`) ??
      list.querySelector(`[data-alert-id="${focusKey.id}"][data-role="select"]`);
    again?.focus();
  }
}

function row(alert, { now, selected, elder, canClaim, onSelect, onClaim }) {
  const id = String(alert.id);
  const where = alert.location?.room ?? "";
  const who = elder
    ? [elder.name, lastTier(elder.community)].filter(Boolean).join(" · ")
    : alert.device_id;
  const holder = alert.claimed_by
    ? `${label("status", alert.status)} · ${t("queue.held_by", { name: alert.claimed_by })}`
    : label("status", alert.status);
  return h(
    "li",
    {
      class: `alert-row cat-${alert.category} prio-${alert.priority} status-${alert.status}${
        unclaimed(alert) ? " unclaimed" : ""
      }`,
      dataset: { alertId: id, deviceId: alert.device_id, type: alert.type },
    },
    h(
      "button",
      {
        type: "button",
        class: "row-open",
        "aria-current": selected ? "true" : "false",
        dataset: { alertId: id, role: "select" },
        onclick: () => onSelect(alert.id),
      },
      h("span", { class: "row-type" }, label("type", alert.type)),
      h("span", { class: "badge prio" }, label("priority", alert.priority)),
      h("span", { class: "badge cat" }, label("category", alert.category)),
      alert.count > 1 ? h("span", { class: "row-count" }, t("queue.times", { n: alert.count })) : null,
      h("span", { class: "row-who" }, who),
      h("span", { class: "row-where" }, elder ? alert.device_id : "", where ? ` · ${where}` : ""),
      h("span", { class: "row-status" }, holder),
      h("time", { class: "row-age", datetime: alert.created_at }, age(alert.created_at, now)),
    ),
    canClaim && unclaimed(alert)
      ? h(
          "button",
          {
            type: "button",
            class: "row-claim",
            dataset: { alertId: id, role: "claim" },
            "aria-label": `${t("queue.claim")} ${label("type", alert.type)} ${alert.device_id}`,
            onclick: () => onClaim(alert.id),
          },
          t("queue.claim"),
        )
      : null,
  );
}

function lastTier(community) {
  if (!community) return "";
  const tiers = community.split("/");
  return tiers[tiers.length - 1];
}

/** Arrow keys move between rows, Home/End to the first and last. */
export function queueKeys(list) {
  list.addEventListener("keydown", (event) => {
    const rows = [...list.querySelectorAll('[data-role="select"]')];
    const index = rows.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: rows.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    rows[Math.max(0, Math.min(rows.length - 1, moves[event.key]))].focus();
  });
}
