// The dashboard's wiring: read the views once, then follow the event stream.
//
// Views are read again only when an event says something it does not carry itself (a deploy,
// a scale, a service the page does not know), for that stack alone and debounced, and all of
// them after a gap in the stream or an engine reconnect. Nothing is polled: a quiet daemon sees
// one open event stream per page and nothing else.

import * as actions from "./actions.js";
import { ApiError, get, setTokenPrompt, stackPath } from "./api.js";
import { askToken } from "./dialogs.js";
import { EventFeed } from "./feed.js";
import { EventLog } from "./log.js";
import { eventTime, Model, SLACK_S } from "./model.js";
import { stackCard, tick } from "./render.js";

const REFETCH_DELAY_MS = 300;
const TICK_MS = 5000;  // uptimes and sparklines move with the clock

const $ = (id) => document.getElementById(id);
const model = new Model();
const log = new EventLog($("event-log"), $("filter-stack"), $("filter-service"));
let skewMs = 0;  // the daemon's clock minus ours, from the answers' Date headers
let loadedAt = 0;  // daemon time of the last full read (seconds)

const daemonNow = () => (Date.now() + skewMs) / 1000;

function noteDate(date) {
  skewMs = date - Date.now();
  return date / 1000;
}

// ----------------------------------------------------------------------------- drawing

let drawPending = false;
const dirty = new Set();

function draw(names) {
  for (const name of names) dirty.add(name);
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    const container = $("stacks");
    const now = daemonNow();
    for (const name of dirty) {
      const old = container.querySelector(`:scope > article[data-stack="${CSS.escape(name)}"]`);
      const stack = model.stacks.get(name);
      if (!stack) {
        old?.remove();
        continue;
      }
      const card = stackCard(model, stack, now);
      if (old) old.replaceWith(card);
      else container.append(card);
    }
    dirty.clear();
    const cards = [...container.querySelectorAll(":scope > article")];
    cards.sort((a, b) => a.dataset.stack.localeCompare(b.dataset.stack));
    container.append(...cards);
    $("no-stacks").hidden = model.stacks.size > 0;
    log.setChoices(model);
  });
}

const drawAll = () => draw([...model.stacks.keys(), ...dirtyCards()]);

function dirtyCards() {
  return [...$("stacks").querySelectorAll(":scope > article")].map((card) => card.dataset.stack);
}

// ----------------------------------------------------------------------------- reading views

async function readStack(name, summary) {
  try {
    const [services, tasks] = await Promise.all([
      get(stackPath(name, "services")),
      get(`${stackPath(name, "tasks")}?all=true`),
    ]);
    const known = summary ?? model.stacks.get(name)?.summary;
    if (!known) return;  // removed while it was read
    model.setStack(known, services.body, tasks.body, noteDate(Math.min(services.date, tasks.date)));
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 404)) throw error;
    model.stacks.delete(name);  // removed meanwhile
  }
  draw([name]);
}

/** The stack list: new stacks are read, gone ones dropped, summaries (removal state) kept. */
async function readList(readAll) {
  const answer = await get("/v1/stacks");
  const at = noteDate(answer.date);
  const listed = new Map(answer.body.map((summary) => [summary.name, summary]));
  for (const [name, stack] of model.stacks) {
    // A stack deployed after the list was read is not in it yet: keep it.
    if (!listed.has(name) && stack.loadedAt < at - SLACK_S) model.stacks.delete(name);
  }
  const reads = [];
  for (const [name, summary] of listed) {
    if (readAll || !model.stacks.has(name)) reads.push(readStack(name, summary));
    else model.setSummary(summary);
  }
  await Promise.all(reads);
  drawAll();
  return at;
}

// Refetches asked for by events, merged while one is running.
const wanted = { stacks: new Set(), list: false, full: false };
let refetchTimer = null;
let refetching = false;

function refetch(effects) {
  for (const name of effects.refetch) wanted.stacks.add(name);
  wanted.list ||= effects.list;
  wanted.full ||= effects.full;
  if (refetchTimer === null && !refetching && (wanted.full || wanted.list || wanted.stacks.size)) {
    refetchTimer = setTimeout(runRefetch, REFETCH_DELAY_MS);
  }
}

async function runRefetch() {
  refetchTimer = null;
  refetching = true;
  const { stacks, list, full } = wanted;
  wanted.stacks = new Set();
  wanted.list = wanted.full = false;
  try {
    if (full) loadedAt = await readList(true);
    else {
      if (list) await readList(false);
      await Promise.all([...stacks].filter((name) => model.stacks.has(name)).map((name) => readStack(name)));
    }
  } catch (error) {
    banner(`Could not read the views: ${error.message}`);
    wanted.full = true;  // try everything again a little later
  } finally {
    refetching = false;
    refetch({ refetch: [], list: false, full: false });
  }
}

// ----------------------------------------------------------------------------- events

function banner(text) {
  const node = $("banner");
  node.textContent = text || "";
  node.hidden = !text;
}

function onMessage(message) {
  log.add(message);
  const fresh = eventTime(message) >= loadedAt - SLACK_S;
  if (message.type === "engine.disconnected" && fresh) {
    banner(`The Docker engine is not answering: ${message.reason || "no reason given"}. Nothing changes until it is back.`);
  } else if (message.type === "engine.reconnected" && fresh) {
    banner("");
  }
  const effects = model.apply(message);
  draw(effects.changed);
  refetch(effects);
}

function onGap(gap) {
  if (gap.to === null) {
    log.clear();
    log.note("The daemon's event stream was reset: reading it again from its start.");
  } else {
    log.note(`Messages ${gap.from} to ${gap.to} were lost: the stream no longer holds them. The views are read again.`);
  }
  refetch({ refetch: [], list: false, full: true });
}

function onStatus(state, detail) {
  const node = $("connection");
  node.dataset.state = state;
  node.textContent = state === "live" ? "live" : "reconnecting";
  node.title = detail || "";
}

// ----------------------------------------------------------------------------- actions

$("stacks").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const { action, stack, service } = button.dataset;
  if (action === "scale") {
    const current = model.stacks.get(stack)?.services.get(service)?.desired ?? 1;
    await actions.scale(stack, service, current);
  } else if (action === "rollback") {
    await actions.rollback(stack, service);
  } else if (action === "remove") {
    const outcome = await actions.remove(stack);
    const known = model.stacks.get(stack);
    if (outcome && known) {
      if (outcome.removed) model.stacks.delete(stack);
      else known.removal = outcome.message;
      draw([stack]);
    }
  }
});

// ----------------------------------------------------------------------------- start

async function start() {
  document.documentElement.dataset.ready = "true";  // the scripts loaded (tests wait for it)
  setTokenPrompt(askToken);
  new actions.DeployDialog(model);  // eslint-disable-line no-new
  log.render();
  for (;;) {
    try {
      loadedAt = await readList(true);
      banner("");
      break;
    } catch (error) {
      banner(`Could not read the views: ${error.message}. Trying again.`);
      await new Promise((resolve) => setTimeout(resolve, 3000));
    }
  }
  new EventFeed({ message: onMessage, gap: onGap, status: onStatus }).start();
  setInterval(() => tick($("stacks"), model, daemonNow()), TICK_MS);
}

start();
