// The community worker's page (/visits): today's visits in order, each with the address, the
// key-safe note, the people to call (tel: links) and a one-tap outcome. Phone-sized, Chinese
// first. The server decides what the worker may see: the visits of their own community.

import { Api, ApiError } from "./api.js";
import { h } from "./dom.js";
import { applyStatic, label, lang, setLang, t } from "./i18n.js";
import { storeToken, storedToken, userOf } from "./session.js";

export const VISIT_OUTCOMES = ["well", "needed_help", "not_home", "hospital", "deceased", "other"];

const byId = (id) => document.getElementById(id);
const els = {
  login: byId("login-form"),
  loginError: byId("login-error"),
  username: byId("username"),
  password: byId("password"),
  view: byId("visits-view"),
  list: byId("visit-list"),
  empty: byId("visits-empty"),
  summary: byId("visits-summary"),
  lang: byId("lang-toggle"),
  logout: byId("logout"),
};

let api = null;
let visits = [];

/** Today's visits: not done yet and due before the end of today (overdue ones too), soonest
 * first as the API lists them. */
export function endOfToday(now = new Date()) {
  const end = new Date(now);
  end.setHours(24, 0, 0, 0);
  return end;
}

function boot() {
  applyStatic(document);
  document.title = t("visit.title");
  drawLang();
  els.lang.addEventListener("click", () => {
    setLang(lang() === "zh" ? "en" : "zh");
    document.title = t("visit.title");
    drawLang();
    draw();
  });
  els.logout.addEventListener("click", () => signOut(""));
  els.login.addEventListener("submit", onLogin);
  const token = storedToken();
  if (userOf(token)) start(token);
  else showLogin("");
}

function drawLang() {
  els.lang.textContent = lang() === "zh" ? "English" : "中文";
}

function showLogin(message) {
  els.view.hidden = true;
  els.logout.hidden = true;
  els.login.hidden = false;
  els.loginError.textContent = message;
}

async function onLogin(event) {
  event.preventDefault();
  els.loginError.textContent = "";
  try {
    const token = await Api.login(els.username.value.trim(), els.password.value);
    storeToken(token);
    els.password.value = "";
    start(token);
  } catch (error) {
    els.loginError.textContent =
      error instanceof ApiError ? t("login.failed") : t("login.unreachable");
  }
}

function signOut(message) {
  storeToken(null);
  api = null;
  visits = [];
  showLogin(message);
}

async function start(token) {
  api = new Api(token, () => signOut(t("login.expired")));
  els.login.hidden = true;
  els.view.hidden = false;
  els.logout.hidden = false;
  await load();
}

async function load() {
  const due = encodeURIComponent(endOfToday().toISOString());
  try {
    const page = await api.get(`visits?status=open&due_before=${due}&limit=200`);
    visits = page.items;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    els.summary.textContent = t("visit.failed", { detail: error.message });
    return;
  }
  draw();
}

function draw() {
  const open = visits.filter((v) => v.status !== "done").length;
  els.summary.textContent = t("visit.summary", { open, total: visits.length });
  els.empty.hidden = visits.length > 0;
  els.list.replaceChildren(...visits.map((visit, index) => card(visit, index + 1)));
}

function card(visit, order) {
  const elder = visit.elder;
  const due = new Date(visit.due_at);
  const time = due.toLocaleTimeString(lang() === "zh" ? "zh-CN" : "en-GB", {
    hour: "2-digit",
    minute: "2-digit",
  });
  const calls = [
    elder.phone ? call(t("visit.call_elder", { name: elder.name }), elder.phone) : null,
    ...elder.contacts.map((c) => call(`${c.name}（${c.label ?? label("relation", c.relation)}）`, c.phone)),
  ].filter(Boolean);
  return h(
    "li",
    {
      class: "visit",
      dataset: { id: visit.id, status: visit.status, overdue: String(visit.overdue) },
    },
    h(
      "h2",
      {},
      h("span", { class: "order" }, `${order}.`),
      elder.name,
      h("span", { class: "badge" }, label("visit_reason", visit.reason)),
      visit.overdue ? h("span", { class: "badge overdue" }, t("visit.overdue")) : null,
    ),
    h("div", { class: "due" }, t("visit.due", { time }), visit.assignee ? ` · ${visit.assignee}` : ""),
    h("p", { class: "address" }, elder.address ?? t("visit.no_address")),
    elder.key_safe_note
      ? h("p", { class: "key-safe" }, `${t("visit.key_safe")}：${elder.key_safe_note}`)
      : null,
    visit.notes ? h("p", { class: "notes" }, visit.notes) : null,
    h("ul", { class: "calls", "aria-label": t("visit.calls") }, calls),
    visit.status === "done"
      ? h("p", { class: "done-line", role: "status" }, t("visit.done", { outcome: label("visit_outcome", visit.outcome) }))
      : h(
          "div",
          { class: "outcomes", role: "group", "aria-label": t("visit.outcome") },
          VISIT_OUTCOMES.map((outcome) =>
            h(
              "button",
              { type: "button", class: outcome, dataset: { outcome }, onclick: () => complete(visit, outcome) },
              label("visit_outcome", outcome),
            ),
          ),
        ),
  );
}

function call(text, phone) {
  return h("li", {}, h("a", { href: `tel:${phone}` }, text));
}

async function complete(visit, outcome) {
  try {
    const done = await api.post(`visits/${visit.id}/complete`, { outcome });
    visits = visits.map((v) => (v.id === done.id ? done : v));
  } catch (error) {
    els.summary.textContent = t("visit.failed", { detail: error.message });
    return;
  }
  draw();
}

if (typeof document !== "undefined" && byId("visit-list")) boot();
