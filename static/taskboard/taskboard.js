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
