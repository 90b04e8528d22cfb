// Drawing the stacks from the model: one card per stack, a row per service, a tile per slot.
// Buttons carry data-action / data-stack / data-service; app.js handles their clicks.

import { el, shortDuration, svg } from "./dom.js";

const SPARK_BUCKETS = 30;  // one per minute: the last half hour
const SPARK_WIDTH = 90;
const SPARK_HEIGHT = 18;
const ID_LENGTH = 12;
const UPDATE_LABEL = {
  updating: "updating", paused: "update paused", rolling_back: "rolling back",
  rolled_back: "rolled back",
};

/** The card of one stack. `now`: the daemon's time in seconds. */
export function stackCard(model, stack, now) {
  let desired = 0;
  let running = 0;
  for (const service of stack.services.values()) {
    desired += service.desired;
    running += model.running(service);
  }
  const header = el("header", { class: "stack-head" },
    el("h2", { text: stack.name }),
    stack.removal ? el("span", { class: "badge removing", text: `removing: ${stack.removal}` }) : null,
    el("span", { class: "meta", text: `${stack.services.size} services · ${running}/${desired} running` }),
    el("button", { type: "button", class: "danger", data: { action: "remove", stack: stack.name }, text: "Remove" }),
  );
  const services = [...stack.services.values()].sort((a, b) => a.name.localeCompare(b.name));
  return el("article", { class: "stack", data: { stack: stack.name } },
    header, ...services.map((service) => serviceRow(model, stack, service, now)));
}

function serviceRow(model, stack, service, now) {
  const running = model.running(service);
  const counts = el("span", {
    class: running < service.desired ? "count short" : "count",
    data: { role: "count" },
    text: `${running}/${service.desired}`,
  });
  const head = el("header", { class: "service-head" },
    el("h3", { text: service.name }),
    counts,
    el("span", { class: "image", text: service.view.image || "" }),
    ...ports(service.view.ports || []),
    updateBadge(service),
    service.givenUp ? el("span", {
      class: "badge failed", data: { role: "given-up" },
      text: `${service.givenUp} gave up: ${service.givenUpReason}`,
    }) : null,
    service.status?.kind === "degraded" && running < service.desired ? el("span", {
      class: "badge degraded", text: `degraded: ${service.status.reason}`,
    }) : null,
    sparkline(model.endings(service), now),
    el("span", { class: "actions" },
      el("button", { type: "button", data: { action: "scale", stack: stack.name, service: service.name }, text: "Scale" }),
      el("button", { type: "button", data: { action: "rollback", stack: stack.name, service: service.name }, text: "Roll back" })),
  );
  const tiles = [...service.slots.values()].sort((a, b) => a.slot - b.slot);
  return el("section", { class: "service", data: { service: service.name } },
    head,
    el("ol", { class: "tiles" }, ...tiles.map((tile) => tileItem(model, stack, service, tile, now))));
}

function updateBadge(service) {
  const label = UPDATE_LABEL[service.updateState];
  if (!label) return null;
  const text = service.updateMessage ? `${label}: ${service.updateMessage}` : label;
  return el("span", { class: `badge update-${service.updateState}`, data: { role: "update" }, text });
}

/** Published ports as links to the host this page came from (TCP); the others as text. */
function ports(list) {
  return list.map((port) => {
    const target = `${port.target}/${port.protocol}`;
    if (!Number.isInteger(port.published)) return el("span", { class: "port", text: target });
    const text = `${port.published}→${target}`;
    if (port.protocol !== "tcp") return el("span", { class: "port", text });
    const href = `http://${location.hostname}:${port.published}/`;
    return el("a", { class: "port", href, target: "_blank", rel: "noopener noreferrer", text });
  });
}

function tileItem(model, stack, service, tile, now) {
  const leaving = tile.slot > service.desired || tile.desiredState === "shutdown";
  const state = tile.health === "unhealthy" ? "unhealthy" : tile.state;
  const restarts = model.restarts(service, tile);
  const age = shortDuration(now - tile.since);
  const error = tile.error || tile.lastError;
  return el("li", {
    class: leaving ? "tile leaving" : "tile",
    data: {
      stack: stack.name, service: service.name, slot: String(tile.slot), state,
      task: tile.taskId, container: tile.containerId, restarts: String(restarts),
    },
  },
  el("div", { class: "tile-head" },
    el("b", { text: `${service.name}.${tile.slot}` }),
    el("span", { class: "state", text: state })),
  el("div", { class: "tile-line" },
    el("code", { text: tile.containerId ? tile.containerId.slice(0, ID_LENGTH) : "no container" })),
  el("div", { class: "tile-line" },
    el("span", {
      data: { since: String(tile.since), format: tile.state === "running" ? "up {}" : `${tile.state} {} ago` },
      text: (tile.state === "running" ? "up {}" : `${tile.state} {} ago`).replace("{}", age),
    }),
    el("span", { class: restarts ? "restarts some" : "restarts", text: `restarts ${restarts}` })),
  tile.node ? el("div", { class: "tile-line", text: `node ${tile.node}` }) : null,
  error ? el("div", { class: "tile-error", title: error, text: tile.error ? error : `last error: ${error}` }) : null,
  tile.gaveUp ? el("div", { class: "tile-error", text: `gave up: ${tile.gaveUp}` }) : null);
}

/** What moves with the clock alone (ages, sparklines), updated in place: no button is redrawn. */
export function tick(container, model, now) {
  for (const node of container.querySelectorAll("[data-since]")) {
    node.textContent = node.dataset.format.replace("{}", shortDuration(now - Number(node.dataset.since)));
  }
  for (const spark of container.querySelectorAll('[data-role="sparkline"]')) {
    const section = spark.closest("section[data-service]");
    const card = spark.closest("article[data-stack]");
    const service = model.stacks.get(card?.dataset.stack)?.services.get(section?.dataset.service);
    if (service) spark.replaceWith(sparkline(model.endings(service), now));
  }
}

/** Restarts per minute over the last half hour, as a small line. */
function sparkline(endings, now) {
  const buckets = new Array(SPARK_BUCKETS).fill(0);
  for (const at of endings) {
    const minutesAgo = Math.floor((now - at) / 60);
    if (minutesAgo >= 0 && minutesAgo < SPARK_BUCKETS) buckets[SPARK_BUCKETS - 1 - minutesAgo] += 1;
  }
  const total = buckets.reduce((a, b) => a + b, 0);
  const top = Math.max(1, ...buckets);
  const step = SPARK_WIDTH / (SPARK_BUCKETS - 1);
  const points = buckets.map((count, i) =>
    `${(i * step).toFixed(1)},${(SPARK_HEIGHT - 1 - (count / top) * (SPARK_HEIGHT - 2)).toFixed(1)}`);
  const label = `${total} restarts in the last 30 minutes`;
  return el("span", { class: total ? "spark some" : "spark", title: label, data: { role: "sparkline", total: String(total) } },
    svg("svg", {
      viewBox: `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`, width: SPARK_WIDTH, height: SPARK_HEIGHT,
      role: "img", "aria-label": label,
    }, svg("polyline", { points: points.join(" ") })),
    el("span", { text: `${total} in 30 min` }));
}
