// The live event log: the newest messages first, filtered by stack and service.
//
// The last KEPT messages are kept in sessionStorage (written at most once a second), so a
// reload shows what was there and the feed resumes after the last seq: nothing is missed.

import { clock, el } from "./dom.js";

const LOG_KEY = "orchestrator.log";
const KEPT = 500;
const SAVE_EVERY_MS = 1000;

/** The message as one line of text, close to what `orchestrator events` prints. */
export function describe(message) {
  const parts = [message.type];
  let where = [message.stack, message.service].filter(Boolean).join("/");
  if (message.slot !== undefined) where += `.${message.slot}`;
  parts.push(where);
  if ("from" in message || "to" in message) parts.push(`${message.from ?? "?"}→${message.to ?? "?"}`);
  if (message.container_id) parts.push(String(message.container_id).slice(0, 12));
  if ("replicas" in message) {
    parts.push("running" in message ? `running=${message.running}/${message.replicas}` : `replicas=${message.replicas}`);
  }
  if ("exit_code" in message) parts.push(`exit=${message.exit_code}`);
  if ("delay_s" in message) parts.push(`delay=${message.delay_s}s`);
  if ("dropped" in message) parts.push(`dropped=${message.dropped}`);
  if (message.reason) parts.push(String(message.reason));
  return parts.filter(Boolean).join(" ");
}

export class EventLog {
  constructor(list, stackSelect, serviceSelect) {
    this.list = list;
    this.stackSelect = stackSelect;
    this.serviceSelect = serviceSelect;
    this.entries = this.restore();
    this.saveTimer = null;
    stackSelect.addEventListener("change", () => {
      this.serviceSelect.value = "";
      this.render();
    });
    serviceSelect.addEventListener("change", () => this.render());
    addEventListener("pagehide", () => this.save());
  }

  restore() {
    try {
      const stored = JSON.parse(sessionStorage.getItem(LOG_KEY) || "[]");
      return Array.isArray(stored) ? stored.filter((m) => m && typeof m === "object").slice(-KEPT) : [];
    } catch {
      return [];
    }
  }

  save() {
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    sessionStorage.setItem(LOG_KEY, JSON.stringify(this.entries));
  }

  clear() {
    this.entries = [];
    this.save();
    this.render();
  }

  add(message) {
    this.entries.push(message);
    if (this.entries.length > KEPT) this.entries.splice(0, this.entries.length - KEPT);
    if (this.saveTimer === null) this.saveTimer = setTimeout(() => this.save(), SAVE_EVERY_MS);
    if (this.matches(message)) {
      this.list.prepend(this.line(message));
      while (this.list.childElementCount > KEPT) this.list.lastElementChild.remove();
    }
  }

  /** A note from the page itself (a gap in the stream), shown among the messages. */
  note(text) {
    this.add({ type: "note", time: new Date().toISOString(), reason: text });
  }

  matches(message) {
    const stack = this.stackSelect.value;
    const service = this.serviceSelect.value;
    if (stack && message.stack !== stack) return false;
    return !service || message.service === service;
  }

  line(message) {
    const seq = message.seq ?? "";
    return el("li", { class: `event ${message.type === "note" ? "note" : ""}`, data: { type: message.type || "", seq: String(seq) } },
      el("span", { class: "seq", text: String(seq) }),
      el("time", { datetime: message.time || "", text: clock(message.time) }),
      el("span", { class: "what", text: message.type === "note" ? message.reason : describe(message) }));
  }

  render() {
    const shown = this.entries.filter((m) => this.matches(m)).reverse();
    this.list.replaceChildren(...shown.map((m) => this.line(m)));
  }

  /** The filter's choices: the stacks and services the page knows or has seen in the log. */
  setChoices(model) {
    const stacks = new Set(model.stacks.keys());
    const services = new Set();
    for (const m of this.entries) {
      if (m.stack) stacks.add(m.stack);
    }
    const stack = this.stackSelect.value;
    for (const m of this.entries) {
      if (m.service && m.stack === stack) services.add(m.service);
    }
    for (const name of model.stacks.get(stack)?.services.keys() ?? []) services.add(name);
    fillSelect(this.stackSelect, stacks);
    fillSelect(this.serviceSelect, stack ? services : new Set());
  }
}

function fillSelect(select, names) {
  const chosen = select.value;
  const wanted = ["", ...[...names].sort()];
  const have = [...select.options].map((o) => o.value);
  if (wanted.length === have.length && wanted.every((v, i) => v === have[i])) return;
  select.replaceChildren(...wanted.map((value) => el("option", { value, text: value || "all" })));
  select.value = wanted.includes(chosen) ? chosen : "";
}
