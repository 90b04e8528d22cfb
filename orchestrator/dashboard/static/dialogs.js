// The page's two modal questions: the API token, and "are you sure?" before an action.
// Forms never submit anywhere (the CSP forbids it): submit is handled here.

const VISIBLE_ASCII = /^[\x21-\x7e]{1,4096}$/;

const $ = (id) => document.getElementById(id);

/** Resolves to the token the user typed; `reason` says why the last one did not do. */
export function askToken(reason) {
  const dialog = $("token-dialog");
  const input = $("token-input");
  const error = $("token-error");
  showError(error, reason);
  input.value = "";
  return new Promise((resolve) => {
    $("token-form").onsubmit = (event) => {
      event.preventDefault();
      const typed = input.value.trim();
      if (!VISIBLE_ASCII.test(typed)) {
        showError(error, "a token is 1 to 4096 visible ASCII characters");
        return;
      }
      dialog.close();
      resolve(typed);
    };
    dialog.oncancel = (event) => event.preventDefault();  // nothing works without it
    if (!dialog.open) dialog.showModal();
    input.focus();
  });
}

export function showError(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

/**
 * Asks before an action. `body`: nodes that explain it (and inputs `run` reads); `run()` does
 * it: its error is shown in the dialog, which stays open. Resolves to run's result, or null
 * when the user cancelled.
 */
export function confirmAction({ title, body = [], okText = "Confirm", run = async () => true }) {
  const dialog = $("confirm-dialog");
  const ok = $("confirm-ok");
  const error = $("confirm-error");
  $("confirm-title").textContent = title;
  $("confirm-body").replaceChildren(...body);
  ok.textContent = okText;
  ok.disabled = false;
  showError(error, "");
  return new Promise((resolve) => {
    const finish = (result) => {
      dialog.close();
      resolve(result);
    };
    $("confirm-cancel").onclick = () => finish(null);
    dialog.oncancel = (event) => {
      event.preventDefault();
      finish(null);
    };
    $("confirm-form").onsubmit = async (event) => {
      event.preventDefault();
      ok.disabled = true;
      try {
        finish(await run());
      } catch (failure) {
        showError(error, failure.message || String(failure));
      } finally {
        ok.disabled = false;
      }
    };
    dialog.showModal();
    ($("confirm-body").querySelector("input") ?? ok).focus();
  });
}
