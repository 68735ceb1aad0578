// The signed-in user: the bearer token in sessionStorage (one tab, gone when it closes) and
// what its claims say (name, role), read only to shape the page; the server decides.

const STORAGE_KEY = "anxin.token";

export function storedToken() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(STORAGE_KEY, token);
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // kept in memory only
  }
}

/** `{username, role, scope, expiresAt}` from the JWT, or null when unreadable or expired. */
export function userOf(token) {
  if (!token) return null;
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(part), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    const expiresAt = typeof claims.exp === "number" ? claims.exp * 1000 : Infinity;
    if (expiresAt <= Date.now()) return null;
    return { username: claims.sub, role: claims.role, scope: claims.scope ?? "", expiresAt };
  } catch {
    return null;
  }
}
