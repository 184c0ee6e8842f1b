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

// The Content-Security-Policy allows no inline handler and no eval, so htmx's trigger filters
// ("every 5s [expr]") and hx-on handlers live here instead, driven by data attributes:
//   data-taskboard-hold="live open bulk"  which requests of the element wait:
//     live: its polls (no triggering event) while the live switch is off; and, on a page with
//       a pulse (data-taskboard-pulse: the dashboard), every poll but its first (its load):
//       the pulse polls for them all and, when something changed, taskboard:changed
//       refreshes them (views/dashboard.py, pulse);
//     open: its polls while the element (a <details>) is open, so a swap never closes it;
//     bulk: all its requests while rows are selected in the task list (taskboardBulkHeld()).
//   data-taskboard-swap-errors="400 409 429" | "4xx"  such answers carry a message for the user:
//     swapped like a success instead of dropped (on the target or an ancestor of it).
//   data-taskboard-remove-on-success  the element removes itself after a successful request.
(function () {
  var polled = typeof WeakSet === "function" ? new WeakSet() : null;
  function pulsedElsewhere(elt) {
    if (!polled || elt.hasAttribute("data-taskboard-pulse")) return false;
    if (!document.querySelector("[data-taskboard-pulse]")) return false;
    if (!polled.has(elt)) {
      polled.add(elt); // its first poll-like request is its load: it goes
      return false;
    }
    return true;
  }
  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var hold = elt && elt.getAttribute && elt.getAttribute("data-taskboard-hold");
    if (!hold) return;
    var holds = hold.split(/\s+/);
    var poll = !(event.detail.requestConfig && event.detail.requestConfig.triggeringEvent);
    var live = holds.indexOf("live") !== -1;
    var held =
      (poll && live && window.taskboardLive === false) ||
      (poll && live && pulsedElsewhere(elt)) ||
      (poll && holds.indexOf("open") !== -1 && elt.open) ||
      (holds.indexOf("bulk") !== -1 && window.taskboardBulkHeld && window.taskboardBulkHeld());
    if (held) event.preventDefault();
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    var host = event.target.closest && event.target.closest("[data-taskboard-swap-errors]");
    if (!host) return;
    var which = host.getAttribute("data-taskboard-swap-errors").split(/\s+/);
    var status = event.detail.xhr.status;
    if ((which.indexOf("4xx") !== -1 && status >= 400 && status < 500) ||
        which.indexOf(String(status)) !== -1) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.target;
    if (event.detail.successful && elt.matches && elt.matches("[data-taskboard-remove-on-success]")) {
      elt.remove();
    }
  });
})();

// Messages about actions, beside what was clicked. A refused or failed action answers with
// HX-Trigger {"taskboard:message": {"text": …, "level": "error"}} (views/htmx.py, refused()),
// whatever its status; any other failed non-GET request (a 5xx, the server unreachable) gets
// a message from its status. Each message goes in the page's role=status region (announced
// by screen readers), placed next to the element that made the request, and closes by itself
// after 8 s, on its button, or on Escape. Polls never show messages: a panel says itself
// when its data is stale.
(function () {
  var SHOWN_MS = 8000;
  function region() { return document.getElementById("taskboard-messages"); }
  function place(box, elt) {
    if (!elt || !elt.getBoundingClientRect || !elt.isConnected) return;
    var rect = elt.getBoundingClientRect();
    var width = Math.min(360, window.innerWidth - 16);
    var left = Math.max(8, Math.min(rect.left, window.innerWidth - width - 8));
    box.style.position = "absolute";
    box.style.left = left + window.scrollX + "px";
    box.style.top = rect.bottom + window.scrollY + 6 + "px";
    box.style.maxWidth = width + "px";
  }
  window.taskboardMessage = function (text, level, elt) {
    var host = region();
    if (!host || !text) return;
    var box = document.createElement("div");
    box.className = "message level-" + (level || "error");
    box.setAttribute("data-taskboard-message", "");
    var words = document.createElement("span");
    words.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.textContent = "×";
    close.setAttribute("aria-label", host.getAttribute("data-close-label") || "Close");
    close.addEventListener("click", function () { box.remove(); });
    box.appendChild(words);
    box.appendChild(close);
    host.appendChild(box);
    place(box, elt);
    setTimeout(function () { box.remove(); }, SHOWN_MS);
  };
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("[data-taskboard-message]").forEach(function (box) { box.remove(); });
  });
  document.addEventListener("taskboard:message", function (event) {
    var detail = event.detail || {};
    event.target._taskboardMessageShown = true;
    window.taskboardMessage(detail.text, detail.level, event.target);
  });
  function statusText(status) {
    var host = region();
    var key = status === 0 ? "data-unreachable" : "data-failed";
    return (host && host.getAttribute(key)) || (status === 0 ? "The server could not be reached." : "The action failed (error {status}).");
  }
  function failed(event, status) {
    var elt = event.detail.elt;
    var verb = event.detail.requestConfig && event.detail.requestConfig.verb;
    if (!elt || !verb || verb === "get") return;
    if (elt._taskboardMessageShown) { elt._taskboardMessageShown = false; return; }
    window.taskboardMessage(statusText(status).replace("{status}", status), "error", elt);
  }
  document.addEventListener("htmx:responseError", function (event) {
    failed(event, event.detail.xhr.status);
  });
  document.addEventListener("htmx:sendError", function (event) { failed(event, 0); });
})();

// The notification bell (a <details>; Enter and Space on its summary open it, the browser's
// own behaviour): Escape closes its list and, when the focus was in it, gives the focus back
// to the summary; a click elsewhere on the page closes it too, as menus do. A refresh while
// it is open (taskboard:changed, "mark all read") morphs it without closing it: the server
// never renders `open`, so the morph is told to leave that attribute alone.
(function () {
  if (window.Idiomorph && Idiomorph.defaults) {
    var callbacks = Idiomorph.defaults.callbacks;
    var previous = callbacks.beforeAttributeUpdated;
    callbacks.beforeAttributeUpdated = function (name, node, mutation) {
      if (name === "open" && mutation === "remove" && node.id === "notification-bell") return false;
      return previous(name, node, mutation);
    };
  }
  function openBell() { return document.querySelector("#notification-bell[open]"); }
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var bell = openBell();
    if (!bell) return;
    var inside = bell.contains(document.activeElement);
    bell.open = false;
    if (inside) bell.querySelector("summary").focus();
  });
  document.addEventListener("click", function (event) {
    var bell = openBell();
    if (bell && !bell.contains(event.target)) bell.open = false;
  });
})();

// The task list's state in the address bar (the dashboard's filter form, search, sort and
// page links push their query; templates/taskboard/dashboard.html). Two refinements:
//   data-taskboard-clean-query  a GET from this form (or a field of it) leaves out its empty
//     fields, so the address reads /tasks/?state=failed, not ?module=&state=failed&q=…;
//   a push of the address already shown (the search field's change after its keystrokes
//     replaced the address) replaces it instead: no duplicate entry for Back to step over.
(function () {
  document.addEventListener("htmx:configRequest", function (event) {
    var detail = event.detail;
    if (detail.verb !== "get" || !detail.elt.closest("[data-taskboard-clean-query]")) return;
    var empty = [];
    detail.formData.forEach(function (value, name) {
      if (value === "") empty.push(name);
    });
    empty.forEach(function (name) { detail.formData.delete(name); });
  });
  document.addEventListener("htmx:beforeHistoryUpdate", function (event) {
    var history = event.detail.history;
    if (history && history.type === "push" && history.path === location.pathname + location.search) {
      history.type = "replace";
    }
  });
})();

// Morphing swaps keep what the user opened (helper A: the detail page's status block, and
// any polled panel). Idiomorph copies every attribute from the new render, `open` of a
// <details> too, so a poll would close the traceback the user is reading: a morph leaves
// that attribute alone. (Focus is kept by idiomorph itself.)
(function () {
  if (!window.Idiomorph || !window.Idiomorph.defaults) return;
  var callbacks = window.Idiomorph.defaults.callbacks;
  var before = callbacks.beforeAttributeUpdated;
  callbacks.beforeAttributeUpdated = function (name, node, mutation) {
    if (name === "open" && node.tagName === "DETAILS") return false;
    return before ? before(name, node, mutation) : true;
  };
})();

// Idle polls (views/polls.py): a panel rendered with data-taskboard-stamp sends it back on
// its own requests only (not its links' or buttons'), and an unchanged record answers 204:
// htmx swaps nothing. The next render carries the new stamp.
document.addEventListener("htmx:configRequest", function (event) {
  var elt = event.detail.elt;
  var stamp = elt && elt.getAttribute && elt.getAttribute("data-taskboard-stamp");
  if (stamp) event.detail.headers["X-Taskboard-Stamp"] = stamp;
});

// Relative times ("hace 3 minutos") keep true in the browser: the server renders them once
// ({% when %}: <time datetime=… data-taskboard-relative>), and every 30 s they are written
// again here from their instant, in the page's language. So an idle dashboard need not ask
// the server again only because time passed (views/dashboard.py, pulse).
(function () {
  if (typeof Intl === "undefined" || !Intl.RelativeTimeFormat) return;
  var UNITS = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  var format = new Intl.RelativeTimeFormat(document.documentElement.lang || undefined, { numeric: "auto" });
  function text(seconds) {
    var size = Math.abs(seconds);
    for (var i = 0; i < UNITS.length; i++) {
      if (size >= UNITS[i][1]) return format.format(Math.round(seconds / UNITS[i][1]), UNITS[i][0]);
    }
    return format.format(Math.round(seconds), "second");
  }
  function refresh() {
    var now = Date.now();
    document.querySelectorAll("time[data-taskboard-relative]").forEach(function (elt) {
      var at = Date.parse(elt.getAttribute("datetime"));
      if (!isNaN(at)) elt.textContent = text((at - now) / 1000);
    });
  }
  window.setInterval(refresh, 30000);
})();
