// The "live" switch pauses every panel's polling, as Sidekiq's does: the panels' htmx
// triggers read window.taskboardLive ("every 5s [window.taskboardLive]"). Remembered
// per browser.
(function () {
  var KEY = "taskboard.live";
  window.taskboardLive = localStorage.getItem(KEY) !== "off";
  document.addEventListener("change", function (event) {
    if (!event.target.matches("[data-taskboard-live]")) return;
    window.taskboardLive = event.target.checked;
    localStorage.setItem(KEY, event.target.checked ? "on" : "off");
    if (window.taskboardLive) document.body.dispatchEvent(new Event("taskboard:changed"));
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-taskboard-live]").forEach(function (box) {
      box.checked = window.taskboardLive;
    });
  });
})();

// Bulk selection in the task list (staff). While tasks are selected, or "all matching" is
// chosen, the list does not refresh itself: its hx-trigger asks taskboardBulkHeld(), so a
// poll never wipes the selection. The header box selects the whole page.
(function () {
  var HELD = "[data-bulk-form] [data-bulk-row]:checked, [data-bulk-form] [data-bulk-scope=filter]:checked";
  window.taskboardBulkHeld = function () {
    return document.querySelector(HELD) !== null;
  };
  function refresh(form) {
    var rows = form.querySelectorAll("[data-bulk-row]");
    var checked = form.querySelectorAll("[data-bulk-row]:checked").length;
    form.querySelectorAll("[data-bulk-count]").forEach(function (el) { el.textContent = checked; });
    var all = form.querySelector("[data-bulk-all]");
    if (all) {
      all.checked = checked > 0 && checked === rows.length;
      all.indeterminate = checked > 0 && checked < rows.length;
    }
    var held = window.taskboardBulkHeld();
    form.querySelectorAll("[data-bulk-paused]").forEach(function (el) { el.hidden = !held; });
  }
  document.addEventListener("change", function (event) {
    var form = event.target.closest("[data-bulk-form]");
    if (!form) return;
    if (event.target.matches("[data-bulk-all]")) {
      form.querySelectorAll("[data-bulk-row]").forEach(function (box) { box.checked = event.target.checked; });
    }
    if (event.target.matches("[data-bulk-row], [data-bulk-all]") && event.target.checked) {
      var selected = form.querySelector("[data-bulk-scope=selected]");
      if (selected) selected.checked = true;  // ticking rows means "these tasks"
    }
    refresh(form);
  });
})();
