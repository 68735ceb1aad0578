// Times and numbers as a dispatcher reads them, in the browser's time zone.

import { lang, t } from "./i18n.js";

function locale() {
  return lang() === "en" ? "en-GB" : "zh-CN";
}

/** "3 分钟前" from an RFC 3339 time, relative to `now` (ms since the epoch). */
export function age(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (seconds < 5) return t("age.now");
  if (seconds < 60) return t("age.s", { n: seconds });
  if (seconds < 3600) return t("age.m", { n: Math.floor(seconds / 60) });
  if (seconds < 86400) return t("age.h", { n: Math.floor(seconds / 3600) });
  return t("age.d", { n: Math.floor(seconds / 86400) });
}

/** "11-22 21:05:09": month, day and time; the year is rarely in doubt on a live queue. */
export function clock(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return new Intl.DateTimeFormat(locale(), {
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  }).format(date);
}

export function number(value, digits = 1) {
  if (typeof value !== "number" || !Number.isFinite(value)) return String(value ?? "");
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits }).format(value);
}
