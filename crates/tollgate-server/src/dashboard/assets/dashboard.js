// tollgate dashboard: the only script. It copies a shown-once secret, asks before destructive
// forms, and shows the live feed. Every page works without it, except the copy button and the feed.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      try {
        await navigator.clipboard.writeText(source.textContent);
        button.textContent = "Copied";
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
        button.textContent = "Selected: press Ctrl+C";
      }
    });
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
  const feed = document.querySelector("[data-live]");
  if (feed) {
    const state = document.getElementById("live-state");
    const source = new EventSource(feed.dataset.live);
    const show = (kind, data) => {
      const item = document.createElement("li");
      const at = data.at ? new Date(data.at).toISOString().replace("T", " ").slice(0, 19) + " UTC " : "";
      item.textContent = at + kind + (data.subject ? " · " + data.subject : "");
      feed.prepend(item);
      while (feed.children.length > 200) feed.lastElementChild.remove();
    };
    source.onopen = () => { state.textContent = "Connected."; };
    source.onerror = () => { state.textContent = "Reconnecting…"; };
    const kinds = ["token.created", "token.revoked", "token.rotated", "user.suspended", "agent.paused", "agent.resumed",
      "lease.opened", "lease.exhausted", "lease.returned", "lease.expired", "lease.revoked", "budget.threshold_crossed",
      "requests.completed", "quota.exceeded", "writer.degraded", "writer.recovered", "resync", "lagged"];
    for (const kind of kinds) {
      source.addEventListener(kind, (event) => show(kind, JSON.parse(event.data)));
    }
  }
});
