// Building DOM nodes. Text from the daemon (names, errors, reasons) only ever goes in as text:
// `text` sets textContent and strings among the children become Text nodes, never markup.

const SVG = "http://www.w3.org/2000/svg";

function fill(node, props, children) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.setAttribute("class", value);
    else if (key === "data") Object.assign(node.dataset, value);
    else node.setAttribute(key, String(value));
  }
  node.append(...children.filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

export function el(tag, props = {}, ...children) {
  return fill(document.createElement(tag), props, children);
}

export function svg(tag, props = {}, ...children) {
  return fill(document.createElementNS(SVG, tag), props, children);
}

/** "4s", "12m", "3h 5m", "2d 4h": how long, for a tile. */
export function shortDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** hh:mm:ss of a message's time, in the browser's time zone. */
export function clock(isoTime) {
  const at = new Date(isoTime);
  return Number.isNaN(at.getTime()) ? String(isoTime) : at.toLocaleTimeString([], { hour12: false });
}
