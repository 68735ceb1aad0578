// The HTTP API, relative to the page (so the console works behind a path prefix too).

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

const BASE = "api/v1";

export class Api {
  /** `onUnauthorized` is called once a request answers 401 (the token expired or was refused). */
  constructor(token, onUnauthorized) {
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  static async login(username, password) {
    const body = new URLSearchParams({ username, password });
    const response = await fetch(`${BASE}/auth/token`, { method: "POST", body });
    const payload = await readJson(response);
    if (!response.ok) throw new ApiError(response.status, payload?.detail ?? response.statusText);
    return payload.access_token;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body) {
    return this.request("POST", path, body);
  }

  patch(path, body) {
    return this.request("PATCH", path, body);
  }

  /** A multipart upload of one file as `file` (the CSV import). */
  async upload(path, file) {
    const body = new FormData();
    body.append("file", file);
    const headers = { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
    const response = await fetch(`${BASE}/${path}`, { method: "POST", headers, body });
    const payload = await readJson(response);
    if (response.status === 401) this.onUnauthorized();
    if (!response.ok) throw new ApiError(response.status, payload?.detail ?? response.statusText);
    return payload;
  }

  async request(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token}`, Accept: "application/json" };
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`${BASE}/${path}`, init);
    const payload = await readJson(response);
    if (response.status === 401) this.onUnauthorized();
    if (!response.ok) throw new ApiError(response.status, payload?.detail ?? response.statusText);
    return payload;
  }

  streamUrl() {
    return `${BASE}/alerts/stream?access_token=${encodeURIComponent(this.token)}`;
  }
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}
