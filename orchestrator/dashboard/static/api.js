// Calls to the daemon's API with its bearer token (docs/api.md, "Access").
//
// The token lives in this tab's sessionStorage only, and only ever goes into the Authorization
// header, never into a URL (URLs end up in logs and in the history). A 401 asks the user for it
// through the prompt app.js installs, once for all calls waiting at that moment, then retries.

const TOKEN_KEY = "orchestrator.token";
/** Milliseconds between attempts of a request the network failed. */
const NETWORK_RETRIES = [50, 150, 400, 1000, 2000];

/** An answer of 400 and above: `code`, `message`, `path` and (for a stack file) `problems`. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.path = error.path || "";
    this.problems = Array.isArray(error.problems) ? error.problems : [];
  }
}

let askToken = async () => { throw new Error("no token prompt installed"); };
let pendingPrompt = null;

/** `prompt(reason)` resolves to a token the user typed; reason is "" or why the last one failed. */
export function setTokenPrompt(prompt) {
  askToken = prompt;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

function headersWithToken(extra) {
  const headers = new Headers(extra || {});
  const current = token();
  if (current) headers.set("Authorization", `Bearer ${current}`);
  return headers;
}

/** Ask once, however many calls met the 401 together. */
function promptForToken(reason) {
  if (!pendingPrompt) {
    pendingPrompt = askToken(reason).then((typed) => {
      sessionStorage.setItem(TOKEN_KEY, typed);
    }).finally(() => { pendingPrompt = null; });
  }
  return pendingPrompt;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * fetch() that tries again after a network failure, for requests that may be repeated. A
 * browser on the Docker host itself aborts its requests whenever the engine adds or removes a
 * container's network interface (ERR_NETWORK_CHANGED), which a busy engine does all the time.
 */
async function fetchRetrying(path, options, retry) {
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await fetch(path, options);
    } catch (error) {
      if (!retry || attempt >= NETWORK_RETRIES.length || !(error instanceof TypeError)) throw error;
      await sleep(NETWORK_RETRIES[attempt]);
    }
  }
}

/**
 * fetch() with the token; a 401 asks for it (again) and retries. Returns the Response.
 * `retry`: the request may be sent again after a network failure (it changes nothing twice).
 */
export async function authorizedFetch(path, options = {}, retry = true) {
  for (;;) {
    const sent = token();
    let headers;
    try {
      headers = headersWithToken(options.headers);
    } catch {
      // A header value the browser refuses (a token with a line break…) is a bad token.
      sessionStorage.removeItem(TOKEN_KEY);
      await promptForToken("that token cannot be sent in a header: it has invalid characters");
      continue;
    }
    const response = await fetchRetrying(path, { ...options, headers }, retry);
    if (response.status !== 401) return response;
    await response.body?.cancel();
    if (token() !== sent) continue;  // another call got a new token meanwhile
    sessionStorage.removeItem(TOKEN_KEY);
    await promptForToken(sent ? "the daemon refused that token" : "");
  }
}

/**
 * One JSON call: resolves to {status, body, date} for 2xx, throws ApiError otherwise.
 * GET, PUT (the same file again is `unchanged`) and DELETE are sent again after a network
 * failure; a POST only when `idempotent` (a scale sets a count; a rollback must not run twice).
 */
export async function call(method, path, body, { idempotent = method !== "POST" } = {}) {
  const options = { method, cache: "no-store" };
  if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers = { "Content-Type": "application/json" };
  }
  const response = await authorizedFetch(path, options, idempotent);
  let parsed = null;
  try {
    parsed = await response.json();
  } catch (error) {
    if (response.ok) throw new Error(`${method} ${path}: the answer was cut off (${error.message})`);
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  const date = Date.parse(response.headers.get("Date") || "");
  return { status: response.status, body: parsed, date: Number.isNaN(date) ? Date.now() : date };
}

export const get = (path) => call("GET", path);

/** `/v1/stacks/<stack>/…` with every name escaped for its place in the path. */
export function stackPath(stack, ...rest) {
  return ["/v1/stacks", stack, ...rest].map((part, i) => (i ? encodeURIComponent(part) : part)).join("/");
}
