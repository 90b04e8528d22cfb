// The event feed: `GET /v1/events` read with fetch() (docs/events.md).
//
// The browser's EventSource cannot send an Authorization header, and the token must never go
// into a URL, so the stream is read from a fetch() body and its `id:` / `event:` / `data:` lines
// are parsed here. The last seq handled is kept in sessionStorage: a reload, or a reconnect after
// the daemon or the network went away, resumes with `?since=<seq>` and misses nothing. If the
// capped stream lost messages meanwhile, the daemon says so with an `event: gap`.

import { authorizedFetch } from "./api.js";

const SEQ_KEY = "orchestrator.seq";
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 15000;

/** Split an SSE byte stream into {id, event, data} records (the WHATWG rules we need). */
export async function* sseRecords(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let record = { id: null, event: "message", data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (record.data.length) yield { ...record, data: record.data.join("\n") };
          record = { id: null, event: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;  // a comment: the daemon's keepalive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") record.data.push(value);
        else if (field === "event") record.event = value;
        else if (field === "id") record.id = value;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

export function lastSeq() {
  const stored = Number.parseInt(sessionStorage.getItem(SEQ_KEY) || "", 10);
  return Number.isSafeInteger(stored) && stored >= 0 ? stored : null;
}

function saveSeq(seq) {
  sessionStorage.setItem(SEQ_KEY, String(seq));
}

export function forgetSeq() {
  sessionStorage.removeItem(SEQ_KEY);
}

/**
 * Follows the stream for as long as the page lives, reconnecting with a capped backoff.
 * handlers: message(msg), gap({from, to}), status("live" | "reconnecting", detail).
 * First visit of the tab: `since=0`, everything the stream still keeps (the log and the
 * restart sparklines start with some history).
 */
export class EventFeed {
  constructor(handlers) {
    this.handlers = handlers;
    this.retryMs = RETRY_MIN_MS;
  }

  start() {
    this.run();
  }

  async run() {
    for (;;) {
      try {
        await this.follow();
        this.handlers.status("reconnecting", "the event stream ended");
      } catch (error) {
        this.handlers.status("reconnecting", error.message || String(error));
      }
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    }
  }

  async follow() {
    const since = lastSeq() ?? 0;
    const response = await authorizedFetch(`/v1/events?since=${since}`, {
      headers: { Accept: "text/event-stream" }, cache: "no-store",
    });
    if (response.status === 400) {
      // A seq newer than the daemon's newest: its stream was reset (another Redis, a flush).
      await response.body?.cancel();
      forgetSeq();
      this.handlers.gap({ from: since, to: null });
      throw new Error("the daemon's event stream was reset; reading it from its start");
    }
    if (!response.ok || !response.body) {
      await response.body?.cancel();
      throw new Error(`event stream: HTTP ${response.status}`);
    }
    this.handlers.status("live", "");
    this.retryMs = RETRY_MIN_MS;
    for await (const record of sseRecords(response.body)) {
      this.dispatch(record);
    }
  }

  dispatch(record) {
    let data;
    try {
      data = JSON.parse(record.data);
    } catch {
      return;  // not ours to understand: skip it rather than stop the feed
    }
    if (record.event === "gap") {
      this.handlers.gap(data);
      return;
    }
    if (!data || !Number.isSafeInteger(data.seq)) return;
    const seen = lastSeq();
    if (seen !== null && data.seq <= seen) return;  // a repeat after a reconnect
    this.handlers.message(data);
    saveSeq(data.seq);
  }
}
