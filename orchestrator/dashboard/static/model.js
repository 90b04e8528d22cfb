// What the page knows: stacks → services → one tile per replica slot.
//
// Built from the views (GET …/services and …/tasks?all=true) and then kept current by the
// events, without I/O: `apply(message)` changes what the message carries and says which views
// to read again for what it does not carry (`refetch`, `list`, `full`).
//
// Replayed messages are older than the views they follow. A stack's views remember the daemon's
// time they were read at (the answer's Date header); a message older than that (minus a little:
// the header has whole seconds) is already in them and only feeds the restart history. The
// other way round, messages can overtake an answer (the views are read while the engine
// changes): the stack's recent messages are applied again to the views that arrive, so a
// replica removed while its stack was being read does not come back. Both are safe because a
// message never moves a task backwards: within a slot a task's state only moves forward, as
// the daemon publishes it, and a task id the tile does not know takes the slot only when it is
// starting (a replacement) and has not been replaced already, never when an old one ends late.

const RANK = {
  new: 0, created: 1, starting: 2, running: 3,
  complete: 4, failed: 4, shutdown: 4, rejected: 4, removed: 5,
};
/** The ends that make the restart policy start another task: counted as restarts. */
const ENDED = new Set(["failed", "complete", "rejected"]);
const STARTING = new Set(["new", "created", "starting", "running", "rejected"]);
const UPDATE_STATE = {
  "update.started": "updating",
  "update.completed": "completed",
  "update.paused": "paused",
  "update.rollback_started": "rolling_back",
  "update.rolled_back": "rolled_back",
};
/** Seconds of doubt between a view's Date header and the messages' times. */
export const SLACK_S = 2;
/** Ended and replaced tasks remembered per service (the restart counts', the sparkline's memory). */
const TASKS_KEPT = 1000;
/** Messages of a stack kept to apply again to views that arrive after them. */
const RECENT_KEPT = 2000;
const RECENT_S = 60;

export function eventTime(message) {
  const at = Date.parse(message.time);
  return Number.isNaN(at) ? 0 : at / 1000;
}

function tileFromRow(row) {
  return {
    slot: row.slot,
    taskId: row.task_id,
    containerId: row.container_id || "",
    state: row.state,
    desiredState: row.desired_state,
    since: row.since,
    error: row.error || "",
    lastError: row.error || "",
    exitCode: row.exit_code ?? null,
    health: row.health ?? null,
    node: row.node || "",
    gaveUp: "",
  };
}

function tileFromEvent(message, at) {
  return {
    slot: message.slot,
    taskId: message.task_id || "",
    containerId: message.container_id || "",
    state: message.to,
    desiredState: "running",
    since: at,
    error: "",
    lastError: "",
    exitCode: null,
    health: null,
    node: message.node || "",
    gaveUp: "",
  };
}

function remember(service, taskId, slot, at) {
  if (!taskId || service.ended.has(taskId)) return false;
  service.ended.set(taskId, { slot, at });
  if (service.ended.size > TASKS_KEPT) service.ended.delete(service.ended.keys().next().value);
  return true;
}

/** A task that a slot has had before its current one: never its current task again. */
function replaced(service, taskId) {
  if (!taskId) return;
  service.replaced.add(taskId);
  if (service.replaced.size > TASKS_KEPT) service.replaced.delete(service.replaced.values().next().value);
}

const noEffects = () => ({ changed: new Set(), refetch: new Set(), list: false, full: false });

export class Model {
  constructor() {
    /** name → {name, summary, loadedAt, removal, services: Map} */
    this.stacks = new Map();
    /** name → the stack's latest task and service messages, oldest first */
    this.recent = new Map();
    /** name → when the daemon said it removed the stack (its views may still arrive) */
    this.removed = new Map();
  }

  /** The views of one stack, read at `loadedAt` (daemon time, seconds). */
  setStack(summary, services, tasks, loadedAt) {
    if ((this.removed.get(summary.name) ?? -Infinity) >= (summary.deployed_at ?? Infinity)) {
      return null;  // views of a stack removed since: not shown again
    }
    const old = this.stacks.get(summary.name);
    const stack = {
      name: summary.name,
      summary,
      loadedAt,
      removal: summary.state === "removing" ? (summary.message || "in progress") : "",
      services: new Map(),
    };
    for (const view of services) {
      const previous = old?.services.get(view.name);
      stack.services.set(view.name, {
        name: view.name,
        view,
        desired: view.replicas_desired,
        updateState: view.update_state || "none",
        updateMessage: view.update_message || "",
        givenUp: view.replicas_given_up || 0,
        givenUpReason: view.given_up_reason || "",
        status: previous?.status ?? null,
        slots: new Map(),
        ended: previous ? previous.ended : new Map(),
        replaced: previous ? previous.replaced : new Set(),
      });
    }
    for (const row of tasks) {  // per slot the current task first, then its history
      const service = stack.services.get(row.service);
      if (!service) continue;
      if (ENDED.has(row.state)) remember(service, row.task_id, row.slot, row.since);
      const tile = service.slots.get(row.slot);
      if (row.current) {
        service.slots.set(row.slot, tileFromRow(row));
        continue;
      }
      replaced(service, row.task_id);
      if (tile && !tile.lastError && row.error) tile.lastError = row.error;
    }
    this.stacks.set(summary.name, stack);
    for (const message of this.recent.get(stack.name) ?? []) {
      const at = eventTime(message);
      const service = stack.services.get(message.service);
      if (service && at >= loadedAt - SLACK_S) this.applyToService(stack, service, message, at, noEffects());
    }
    return stack;
  }

  keepRecent(stack, message) {
    const recent = this.recent.get(stack) ?? [];
    recent.push(message);
    const horizon = eventTime(message) - RECENT_S;
    let drop = Math.max(0, recent.length - RECENT_KEPT);
    while (drop < recent.length && eventTime(recent[drop]) < horizon) drop += 1;
    if (drop) recent.splice(0, drop);
    this.recent.set(stack, recent);
  }

  setSummary(summary) {
    const stack = this.stacks.get(summary.name);
    if (!stack) return;
    stack.summary = summary;
    if (summary.state === "removing") stack.removal = summary.message || stack.removal || "in progress";
  }

  /** Apply one event message; returns what to read again and which stacks to draw. */
  apply(message) {
    const effects = noEffects();
    const at = eventTime(message);
    const stack = message.stack ? this.stacks.get(message.stack) : undefined;
    switch (message.type) {
      case "engine.reconnected":
      case "events.dropped":
        effects.full = true;
        return effects;
      case "stack.deployed":
        effects.list = true;
        if (stack && at >= stack.loadedAt - SLACK_S) effects.refetch.add(stack.name);
        return effects;
      case "stack.removed":
        this.removed.set(message.stack, at);
        if (stack && at >= stack.loadedAt - SLACK_S) {
          this.stacks.delete(stack.name);
          effects.changed.add(stack.name);
        }
        return effects;
      default:
        break;
    }
    if (!stack) return effects;
    if (message.service) this.keepRecent(stack.name, message);
    const service = stack.services.get(message.service);
    if (!service) {
      // A service newer than the views (or one that no longer exists): the views will say.
      if (message.service && at >= stack.loadedAt - SLACK_S) effects.refetch.add(stack.name);
      return effects;
    }
    if (message.type === "task.state" && ENDED.has(message.to) && remember(service, message.task_id, message.slot, at)) {
      effects.changed.add(stack.name);  // restart history, even from a replayed message
    }
    if (at < stack.loadedAt - SLACK_S) return effects;
    if (this.applyToService(stack, service, message, at, effects)) effects.changed.add(stack.name);
    return effects;
  }

  applyToService(stack, service, message, at, effects) {
    const tile = service.slots.get(message.slot);
    switch (message.type) {
      case "task.state":
        return applyTaskState(service, message, at);
      case "service.scaled":
        service.desired = message.replicas;
        for (const each of service.slots.values()) {
          each.desiredState = each.slot <= service.desired ? "running" : "shutdown";
        }
        effects.refetch.add(stack.name);
        return true;
      case "service.converged":
        service.status = { kind: "converged", reason: "" };
        return true;
      case "service.degraded":
        service.status = { kind: "degraded", reason: message.reason || "" };
        return true;
      case "task.gave_up":
        if (tile) tile.gaveUp = message.reason || "gave up";
        effects.refetch.add(stack.name);  // the services view counts the slots that gave up
        return Boolean(tile);
      case "task.unhealthy":
        if (!tile || tile.taskId !== message.task_id) return false;
        tile.health = "unhealthy";
        tile.lastError = message.reason || tile.lastError;
        return true;
      default:
        if (message.type in UPDATE_STATE) {
          service.updateState = UPDATE_STATE[message.type];
          service.updateMessage = message.reason || "";
          return true;
        }
        return false;
    }
  }

  /** Replica slots of a service counted as the API counts them: running, within the count. */
  running(service) {
    let count = 0;
    for (const tile of service.slots.values()) {
      if (tile.slot <= service.desired && tile.state === "running") count += 1;
    }
    return count;
  }

  /** Tasks of the slot that ended and were replaced since the page knew it. */
  restarts(service, tile) {
    let count = 0;
    for (const [taskId, ended] of service.ended) {
      if (ended.slot === tile.slot && taskId !== tile.taskId) count += 1;
    }
    return count;
  }

  /** When the service's tasks ended (seconds, daemon time), for the sparkline. */
  endings(service) {
    return [...service.ended.values()].map((ended) => ended.at);
  }
}

function applyTaskState(service, message, at) {
  const tile = service.slots.get(message.slot);
  if (!tile) {
    if (message.to === "removed" || message.slot > service.desired) return false;
    service.slots.set(message.slot, tileFromEvent(message, at));
    return true;
  }
  if (tile.taskId !== message.task_id) {
    // A replacement takes the slot; an older task ending late does not.
    if (!STARTING.has(message.to) || service.replaced.has(message.task_id)
        || service.ended.has(message.task_id) || at < tile.since - SLACK_S) {
      return false;
    }
    replaced(service, tile.taskId);
    const lastError = tile.error || tile.lastError;
    Object.assign(tile, tileFromEvent(message, at), { lastError, desiredState: tile.desiredState });
  } else if (RANK[message.to] < RANK[tile.state]) {
    return false;  // a late report of a state the tile has passed
  }
  tile.state = message.to;
  tile.containerId = message.container_id || tile.containerId;
  if (message.to === "running" || ENDED.has(message.to) || message.to === "shutdown") tile.since = at;
  if (message.to === "running") tile.health = null;
  if (ENDED.has(message.to)) tile.exitCode = message.exit_code ?? null;
  if (message.to === "failed" || message.to === "rejected") {
    tile.error = message.reason || (message.exit_code != null ? `exit ${message.exit_code}` : message.to);
    tile.lastError = tile.error;
  }
  if (message.to === "removed" && message.slot > service.desired) service.slots.delete(message.slot);
  return true;
}
