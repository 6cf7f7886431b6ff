// APL Match: the little the pages do in the browser. Everything works without it too:
// the ranking's "move" buttons are plain form submissions, and every form posts normally.
(function () {
  "use strict";

  // The choices list: reorder by dragging (SortableJS, where served) or by keyboard with the
  // move buttons (Alt+ArrowUp / Alt+ArrowDown on an item too); the order is saved with one action.
  function setupRanking(list) {
    const live = document.getElementById(list.dataset.live);
    const announce = (text) => { if (live) { live.textContent = text; } };
    const renumber = () => {
      list.querySelectorAll(":scope > li").forEach((item, index) => {
        const input = item.querySelector("input[name=choice]");
        if (input) { input.value = item.dataset.id; }
        item.dataset.rank = String(index + 1);
      });
      const saved = document.getElementById(list.dataset.dirty);
      if (saved) { saved.hidden = false; }
    };
    const move = (item, delta) => {
      const sibling = delta < 0 ? item.previousElementSibling : item.nextElementSibling;
      if (!sibling) { return; }
      if (delta < 0) { list.insertBefore(item, sibling); } else { list.insertBefore(sibling, item); }
      renumber();
      const label = item.querySelector(".what")?.textContent?.trim() || "";
      announce((list.dataset.movedText || "Moved to place {n}: {what}")
        .replace("{n}", item.dataset.rank).replace("{what}", label));
    };
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-move]");
      if (!button || !list.contains(button)) { return; }
      event.preventDefault();
      const item = button.closest("li");
      move(item, Number(button.dataset.move));
      button.focus();
    });
    list.addEventListener("keydown", (event) => {
      if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) { return; }
      const item = event.target.closest("li");
      if (!item) { return; }
      event.preventDefault();
      move(item, event.key === "ArrowUp" ? -1 : 1);
      event.target.focus();
    });
    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-remove]");
      if (!button) { return; }
      event.preventDefault();
      button.closest("li").remove();
      renumber();
    });
    if (window.Sortable) {
      window.Sortable.create(list, { handle: ".handle", animation: 120, onEnd: renumber });
    }
  }

  function ready() {
    document.querySelectorAll("ol.ranking[data-sortable]").forEach(setupRanking);
    // Forms that ask once more before acting (declines, withdrawals).
    document.body.addEventListener("submit", (event) => {
      const form = event.target;
      if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", ready); } else { ready(); }
  document.addEventListener("htmx:afterSettle", () => {
    document.querySelectorAll("ol.ranking[data-sortable]:not([data-ready])").forEach((list) => {
      list.dataset.ready = "1"; setupRanking(list);
    });
  });
})();
