// What the page can change, each after a confirmation: scale a service, roll it back, remove a
// stack, deploy a stack file. Answers and errors are the API's (docs/api.md), shown as text.

import { ApiError, call, stackPath } from "./api.js";
import { confirmAction, showError } from "./dialogs.js";
import { el } from "./dom.js";

const $ = (id) => document.getElementById(id);
/** A stack file bigger than this is not read into the page (the daemon's own limit is 1 MiB by default). */
const MAX_FILE_BYTES = 4 * 1024 * 1024;
const STACK_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export function scale(stack, service, current) {
  const input = el("input", { type: "number", min: "0", step: "1", value: String(current), required: "" });
  return confirmAction({
    title: `Scale ${stack}/${service}`,
    body: [el("label", {}, "replicas ", input)],
    okText: "Scale",
    run: async () => {
      const replicas = Number(input.value);
      if (input.value.trim() === "" || !Number.isSafeInteger(replicas) || replicas < 0) {
        throw new Error("replicas: a whole number, 0 or more");
      }
      return call("POST", stackPath(stack, "scale"), { [service]: replicas }, { idempotent: true });
    },
  });
}

export function rollback(stack, service) {
  return confirmAction({
    title: `Roll back ${stack}/${service}`,
    body: [el("p", { text: "Every replica goes back to the service's previous spec, one batch after the other." })],
    okText: "Roll back",
    run: () => call("POST", stackPath(stack, "services", service, "rollback")),
  });
}

/** Resolves to null (cancelled), {removed: true} or {removed: false, message} (202: in progress). */
export function remove(stack) {
  const volumes = el("input", { type: "checkbox" });
  return confirmAction({
    title: `Remove stack ${stack}`,
    body: [
      el("p", { text: "Its containers and networks are removed." }),
      el("label", {}, volumes, " also its named volumes (their data is lost)"),
    ],
    okText: "Remove",
    run: async () => {
      const answer = await call("DELETE", `${stackPath(stack)}?volumes=${volumes.checked}`);
      const body = answer.body || {};
      return answer.status === 202
        ? { removed: false, message: body.message || "in progress" }
        : { removed: true, message: "" };
    },
  });
}

/** `NAME=value` lines (blank lines and # comments skipped) into the deploy's `env`. */
export function parseEnv(text) {
  const env = {};
  text.split(/\r?\n/).forEach((line, index) => {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) return;
    const equals = trimmed.indexOf("=");
    if (equals < 1) throw new Error(`variables, line ${index + 1}: NAME=value expected`);
    env[trimmed.slice(0, equals).trim()] = trimmed.slice(equals + 1);
  });
  return env;
}

/** The deploy dialog: a name, a file (uploaded or pasted), variables; then confirm and PUT. */
export class DeployDialog {
  constructor(model) {
    this.model = model;
    this.fileName = "stack.yml";
    $("deploy-open").addEventListener("click", () => this.open());
    $("deploy-cancel").addEventListener("click", () => $("deploy-dialog").close());
    $("deploy-file").addEventListener("change", (event) => this.read(event.target.files[0]));
    $("deploy-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  open() {
    this.clear();
    $("deploy-dialog").showModal();
    $("deploy-name").focus();
  }

  clear() {
    showError($("deploy-error"), "");
    $("deploy-problems").hidden = true;
    $("deploy-problem-list").replaceChildren();
    $("deploy-result").hidden = true;
  }

  async read(file) {
    this.clear();
    if (!file) return;
    if (file.size > MAX_FILE_BYTES) {
      this.problems(new Error(`${file.name} is larger than ${MAX_FILE_BYTES} bytes`));
      return;
    }
    this.fileName = file.name;
    $("deploy-text").value = await file.text();
    const name = $("deploy-name");
    if (!name.value) {
      const stem = file.name.replace(/\.ya?ml$/i, "").toLowerCase().replace(/[^a-z0-9_-]/g, "-");
      if (STACK_NAME.test(stem)) name.value = stem;
    }
  }

  async submit() {
    this.clear();
    const stack = $("deploy-name").value.trim();
    const content = $("deploy-text").value;
    let env;
    try {
      env = parseEnv($("deploy-env").value);
    } catch (error) {
      this.problems(error);
      return;
    }
    const known = this.model.stacks.has(stack);
    const confirmed = await confirmAction({
      title: `Deploy ${stack}`,
      body: [el("p", {
        text: known
          ? `The stack ${stack} runs already: services whose spec changes get new containers, by their update_config.`
          : `A new stack ${stack} is created.`,
      })],
      okText: "Deploy",
    });
    if (!confirmed) return;
    try {
      const answer = await call("PUT", stackPath(stack), {
        files: [{ name: this.fileName, content }], env,
      });
      this.result(answer.body);
    } catch (error) {
      this.problems(error);
    }
  }

  result(body) {
    const changed = body.changed_services || [];
    const warnings = body.warnings || [];
    const lines = [`${body.stack}: ${body.result}`];
    if (changed.length) lines.push(`new containers for: ${changed.join(", ")}`);
    const node = $("deploy-result");
    node.replaceChildren(...lines.map((text) => el("span", { text })),
      ...warnings.map((text) => el("span", { class: "warning", text: `warning: ${text}` })));
    node.hidden = false;
  }

  /** An error, with each of a stack file's problems at its file, line and key path. */
  problems(error) {
    showError($("deploy-error"), error instanceof ApiError && error.path && !error.problems.length
      ? `${error.path}: ${error.message}` : error.message);
    const items = error instanceof ApiError ? error.problems.map((problem) => {
      const where = [problem.file, problem.line].filter((part) => part !== null && part !== undefined).join(":");
      return el("li", {},
        el("code", { text: where || "?" }), " ",
        el("b", { text: problem.path || "" }), " ",
        el("span", { text: problem.message || "" }));
    }) : [];
    $("deploy-problem-list").replaceChildren(...items);
    $("deploy-problems").hidden = false;
  }
}
