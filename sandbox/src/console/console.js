// The owner's console: follow the sandbox's changes, send the owner's decisions.
//
// The live part is HTML the sandbox rendered and escaped; everything this script writes itself
// goes through textContent or input values, never markup.
"use strict";

(() => {
  const live = document.getElementById("live");
  const connection = document.getElementById("connection");
  const notice = document.getElementById("notice");
  const dialog = document.getElementById("reject-dialog");
  const reason = document.getElementById("reject-reason");
  const apiUrl = document.getElementById("api-url").textContent;
  let rejecting = null;
  let asked = 0;

  function say(text, kind) {
    notice.textContent = text;
    notice.className = "notice " + (kind || "info");
    notice.hidden = false;
  }

  function setConnection(text, kind) {
    connection.textContent = text;
    connection.className = "connection " + kind;
  }

  // Fetches the live part again; an answer older than the latest request is dropped.
  async function refresh() {
    const mine = ++asked;
    try {
      const res = await fetch("/sandbox/console/fragment", { cache: "no-store" });
      if (!res.ok) {
        throw new Error("the sandbox answered " + res.status);
      }
      const html = await res.text();
      if (mine === asked) {
        live.innerHTML = html;
      }
    } catch (e) {
      setConnection("cannot reach the sandbox: " + e.message, "down");
    }
  }

  // A POST to the admin API: JSON, same origin (the sandbox refuses cross-origin writes).
  async function post(path, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
      cache: "no-store",
    });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!res.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : text;
      throw new Error(detail || "the sandbox answered " + res.status);
    }
    return data;
  }

  async function act(button, path, body, done) {
    button.disabled = true;
    try {
      const data = await post(path, body);
      say(done(data), "ok");
    } catch (e) {
      say(e.message, "error");
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  function follow() {
    const events = new EventSource("/sandbox/console/events");
    events.addEventListener("open", () => {
      setConnection("live", "up");
      refresh();
    });
    events.addEventListener("changed", refresh);
    events.addEventListener("error", () => setConnection("reconnecting…", "down"));
  }

  function openReject(button) {
    rejecting = button;
    document.getElementById("reject-what").textContent = button.dataset.what || button.dataset.id;
    reason.value = "";
    dialog.showModal();
    reason.focus();
  }

  function confirmReject() {
    const why = reason.value.trim();
    if (!why) {
      reason.reportValidity();
      return;
    }
    const button = rejecting;
    rejecting = null;
    dialog.close();
    const id = button.dataset.id;
    act(button, "/sandbox/payment-intents/" + encodeURIComponent(id) + "/reject", { reason: why },
      () => "Rejected " + id + ": " + why);
  }

  async function mintTicket(button) {
    button.disabled = true;
    try {
      const data = await post("/sandbox/tickets", {});
      document.getElementById("ticket-value").value = data.ticket;
      document.getElementById("register-line").textContent =
        "RALIO_API_URL=" + apiUrl + " RALIO_REGISTRATION_TICKET=" + data.ticket + " ralio register";
      document.getElementById("ticket-output").hidden = false;
      say("Minted a ticket for agent " + data.agent_id + " (" + data.scopes.join(" ") + "). It is shown once.", "ok");
    } catch (e) {
      say(e.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  async function copyTicket() {
    const field = document.getElementById("ticket-value");
    field.select();
    try {
      await navigator.clipboard.writeText(field.value);
      say("Copied the ticket.", "ok");
    } catch (_) {
      say("Copying is not allowed here: the ticket is selected, copy it with Ctrl-C.", "info");
    }
  }

  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button) {
      return;
    }
    const id = button.dataset.id;
    switch (button.dataset.action) {
      case "approve-intent":
        act(button, "/sandbox/payment-intents/" + encodeURIComponent(id) + "/approve", {},
          () => "Approved " + id + ".");
        break;
      case "reject-intent":
        openReject(button);
        break;
      case "reject-confirm":
        confirmReject();
        break;
      case "reject-cancel":
        rejecting = null;
        dialog.close();
        break;
      case "approve-registration":
        act(button, "/sandbox/registrations/" + encodeURIComponent(id) + "/approve", {},
          (data) => "Approved the registration: binding " + data.client_id + ".");
        break;
      case "reject-registration":
        act(button, "/sandbox/registrations/" + encodeURIComponent(id) + "/reject", {},
          () => "Rejected the registration of key " + id + ".");
        break;
      case "mint-ticket":
        mintTicket(button);
        break;
      case "copy-ticket":
        copyTicket();
        break;
      default:
        break;
    }
  });

  reason.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") {
      ev.preventDefault();
      confirmReject();
    }
  });

  setConnection("connecting…", "down");
  follow();
})();
