// The dispatcher console: sign-in, the live queue, one alert in detail, and the actions.

import { mountAdmin } from "./admin.js";
import "./elder_visits.js";
import { Api, ApiError } from "./api.js";
import { Cue } from "./cue.js";
import { DetailView } from "./detail.js";
import { CATEGORIES, applyStatic, label, lang, setLang, t } from "./i18n.js";
import { LiveQueue } from "./live.js";
import { AlertQueue, OPEN_STATUSES } from "./queue.js";
import { queueKeys, renderQueue } from "./queue_view.js";
import { storeToken, storedToken, userOf } from "./session.js";

const WORKERS = new Set(["dispatcher", "supervisor", "admin"]);
// How often the ages on the queue ("3 分钟前") are redrawn.
const AGE_REFRESH_MS = 15000;
// Elders looked up for the queue rows (name and community), kept at most this many.
const ELDER_CACHE = 2000;
// Elder look-ups in flight at once.
const ELDER_FETCHES = 4;
// Several changes of the open alert within this time: its detail is fetched once.
const DETAIL_REFRESH_MS = 150;

const byId = (id) => document.getElementById(id);
const els = {
  loginView: byId("login-view"),
  loginForm: byId("login-form"),
  loginError: byId("login-error"),
  username: byId("username"),
  password: byId("password"),
  consoleView: byId("console-view"),
  queueList: byId("queue-list"),
  queueEmpty: byId("queue-empty"),
  queueCount: byId("queue-count"),
  queueTruncated: byId("queue-truncated"),
  categoryFilter: byId("category-filter"),
  detail: byId("detail"),
  connection: byId("connection"),
  soundToggle: byId("sound-toggle"),
  langToggle: byId("lang-toggle"),
  whoami: byId("whoami"),
  logout: byId("logout"),
  announcer: byId("announcer"),
};

const cue = new Cue(els.announcer);
let session = null;

function boot() {
  applyStatic(document);
  fillCategoryFilter();
  drawToggles();
  els.loginForm.addEventListener("submit", onLogin);
  els.logout.addEventListener("click", () => signOut(""));
  els.langToggle.addEventListener("click", () => {
    setLang(lang() === "zh" ? "en" : "zh");
    relabel();
  });
  els.soundToggle.addEventListener("click", () => {
    cue.setEnabled(!cue.enabled);
    if (cue.enabled) cue.unlock();
    drawToggles();
  });
  els.categoryFilter.addEventListener("change", () => drawQueue());
  queueKeys(els.queueList);
  // Any touch of the page lets it make sound (browsers' autoplay rule).
  for (const name of ["pointerdown", "keydown"]) {
    document.addEventListener(name, () => cue.unlock(), { capture: true });
  }
  const token = storedToken();
  const user = userOf(token);
  if (user) start(token, user);
  else showLogin("");
}

function showLogin(message) {
  els.consoleView.hidden = true;
  els.loginView.hidden = false;
  els.logout.hidden = true;
  els.whoami.textContent = "";
  els.connection.hidden = true;
  els.loginError.textContent = message;
  els.username.focus();
}

async function onLogin(event) {
  event.preventDefault();
  cue.unlock();
  els.loginError.textContent = "";
  const button = els.loginForm.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const token = await Api.login(els.username.value.trim(), els.password.value);
    const user = userOf(token);
    if (!user) throw new ApiError(401, "unreadable token");
    storeToken(token);
    els.password.value = "";
    start(token, user);
  } catch (error) {
    els.loginError.textContent =
      error instanceof ApiError ? t("login.failed") : t("login.unreachable");
  } finally {
    button.disabled = false;
  }
}

function start(token, user) {
  if (user.role === "visitor") {
    // A community worker has their own page; the queue is the control room's.
    window.location.replace("visits");
    return;
  }
  const api = new Api(token, () => signOut(t("login.expired")));
  const queue = new AlertQueue();
  const detail = new DetailView(els.detail, { onAction: act });
  session = {
    api,
    user,
    queue,
    detail,
    elders: new Map(),
    elderWaiting: [],
    elderFetching: 0,
    drawPending: false,
    selectedId: null,
    detailTimer: null,
    detailRequest: 0,
    timers: [],
    live: null,
    admin: null,
  };
  session.live = new LiveQueue({
    api,
    onSnapshot: (items, truncated) => onSnapshot(items, truncated),
    onChange: (alert, name) => onChange(alert, name),
    onMode: (mode) => drawMode(mode),
  });
  session.timers.push(setInterval(drawQueue, AGE_REFRESH_MS));
  const lifetime = user.expiresAt - Date.now();
  if (Number.isFinite(lifetime) && lifetime < 2 ** 31) {
    session.timers.push(setTimeout(() => signOut(t("login.expired")), lifetime));
  }
  els.loginView.hidden = true;
  els.consoleView.hidden = false;
  els.logout.hidden = false;
  els.connection.hidden = false;
  els.whoami.textContent = user.username;
  drawMode("offline");
  drawQueue();
  session.live.start();
  const linked = /^#alert-(\d+)$/.exec(location.hash);
  if (linked) select(Number(linked[1]));
  session.admin = mountAdmin(api, user);
}

function signOut(message) {
  if (!session) return;
  session.admin?.stop();
  session.live.stop();
  for (const timer of session.timers) {
    clearInterval(timer);
    clearTimeout(timer);
  }
  clearTimeout(session.detailTimer);
  session.detail.placeholder();
  session = null;
  storeToken(null);
  history.replaceState(null, "", location.pathname);
  els.queueList.replaceChildren();
  updateTitle(0);
  showLogin(message);
}

// The queue.

function onSnapshot(items, truncated) {
  const firstLoad = !session.queue.loaded;
  const fresh = session.queue.replace(items, truncated);
  // On the first load the page shows what waits; a tone is for what arrives while watching.
  if (!firstLoad) for (const alert of fresh) announceIfCritical(alert);
  drawQueue();
  const selected = session.selectedId;
  const known = selected === null ? null : session.queue.get(selected);
  if (known && session.detail.detail && known.updated_at !== session.detail.detail.updated_at) {
    scheduleDetailRefresh();
  }
}

function onChange(alert, name) {
  const seen = session.queue.has(alert.id);
  session.queue.apply(alert);
  if (name === "alert.created" && !seen) announceIfCritical(alert);
  drawQueue();
  if (alert.id === session.selectedId) scheduleDetailRefresh();
}

function announceIfCritical(alert) {
  if (alert.priority !== "critical" || alert.status !== "new") return;
  cue.newCritical(
    t("announce.new_critical", { type: label("type", alert.type), device: alert.device_id }),
  );
}

function drawQueue() {
  if (!session) return;
  const alerts = session.queue.sorted(els.categoryFilter.value);
  renderQueue(els.queueList, alerts, {
    selectedId: session.selectedId,
    elderOf,
    canClaim: WORKERS.has(session.user.role),
    onSelect: select,
    onClaim: claimFromQueue,
  });
  els.queueEmpty.hidden = alerts.length > 0 || !session.queue.loaded;
  els.queueCount.textContent = t("queue.count", { n: session.queue.alerts.size });
  els.queueTruncated.hidden = !session.queue.truncated;
  els.queueTruncated.textContent = t("queue.truncated", { n: session.queue.alerts.size });
  updateTitle(session.queue.unclaimedCount());
}

function updateTitle(unclaimed) {
  document.title = unclaimed > 0 ? `(${unclaimed}) ${t("app.title")}` : t("app.title");
}

/** The elder of a queue row, looked up once; null until known (the row shows the device). */
function elderOf(elderId) {
  const elders = session.elders;
  if (elders.has(elderId)) return elders.get(elderId);
  if (elders.size >= ELDER_CACHE) elders.delete(elders.keys().next().value);
  elders.set(elderId, null);
  session.elderWaiting.push(elderId);
  fetchElders(session);
  return null;
}

/** A few look-ups at a time, so that a long queue does not fire hundreds of requests. */
function fetchElders(current) {
  while (current.elderFetching < ELDER_FETCHES && current.elderWaiting.length) {
    const elderId = current.elderWaiting.shift();
    current.elderFetching += 1;
    current.api
      .get(`elders/${elderId}`)
      .then((elder) => {
        current.elders.set(elderId, elder);
        if (session === current) drawQueueSoon();
      })
      .catch(() => {}) // not allowed or gone: the row keeps showing the device
      .finally(() => {
        current.elderFetching -= 1;
        if (session === current) fetchElders(current);
      });
  }
}

/** Many answers in a row draw the queue once. */
function drawQueueSoon() {
  if (session.drawPending) return;
  session.drawPending = true;
  requestAnimationFrame(() => {
    if (!session) return;
    session.drawPending = false;
    drawQueue();
  });
}

// One alert.

async function select(alertId) {
  session.selectedId = alertId;
  // In the address, so that a reload (or a link to a colleague) opens the same alert.
  history.replaceState(null, "", `#alert-${alertId}`);
  drawQueue();
  if (session.detail.alertId !== alertId) session.detail.loading();
  await loadDetail(alertId);
}

function scheduleDetailRefresh() {
  clearTimeout(session.detailTimer);
  const alertId = session.selectedId;
  session.detailTimer = setTimeout(() => loadDetail(alertId), DETAIL_REFRESH_MS);
}

async function loadDetail(alertId) {
  const current = session;
  const request = ++current.detailRequest;
  try {
    const detail = withProfile(await current.api.get(`alerts/${alertId}`));
    // A later selection or refresh wins over this one.
    if (session !== current || request !== current.detailRequest) return;
    if (current.selectedId !== alertId) return;
    current.detail.show(detail, current.user);
  } catch (error) {
    if (session === current && current.selectedId === alertId && error.status === 404) {
      current.detail.placeholder();
    }
  }
}

/** The alert detail as the page draws it: elder, device, contacts and telemetry may be absent. */
function withProfile(alert) {
  return { elder: null, device: null, contacts: [], telemetry: [], ...alert };
}

async function act(action, alertId, body) {
  const current = session;
  const path = action === "note" ? "notes" : action;
  const answer = await current.api.post(`alerts/${alertId}/${path}`, body);
  if (session !== current) return;
  current.queue.apply(answer);
  drawQueue();
  if (current.selectedId === alertId) {
    current.detail.show(withProfile(answer), current.user);
    if (!OPEN_STATUSES.has(answer.status)) els.queueList.querySelector('[data-role="select"]')?.focus();
  }
}

async function claimFromQueue(alertId) {
  session.selectedId = alertId;
  history.replaceState(null, "", `#alert-${alertId}`);
  session.detail.loading();
  try {
    const current = session;
    const answer = await current.api.post(`alerts/${alertId}/claim`);
    if (session !== current) return;
    current.queue.apply(answer);
    drawQueue();
  } catch {
    // taken by someone else meanwhile: the detail shows who holds it
  }
  await loadDetail(alertId);
}

// Header: connection, sound, language.

function drawMode(mode) {
  els.connection.dataset.mode = mode;
  els.connection.textContent = t(`connection.${mode}`);
}

function drawToggles() {
  els.soundToggle.textContent = t(cue.enabled ? "sound.on" : "sound.off");
  els.soundToggle.setAttribute("aria-pressed", String(cue.enabled));
  els.langToggle.textContent = t("lang.switch");
  els.langToggle.lang = lang() === "zh" ? "en" : "zh-CN";
}

function fillCategoryFilter() {
  const chosen = els.categoryFilter.value;
  els.categoryFilter.replaceChildren(
    new Option(t("queue.filter.all"), ""),
    ...CATEGORIES.map((c) => new Option(label("category", c), c)),
  );
  els.categoryFilter.value = chosen;
}

function relabel() {
  fillCategoryFilter();
  drawToggles();
  if (!session) return;
  drawMode(els.connection.dataset.mode);
  drawQueue();
  session.detail.relabel();
}

boot();
