// Queues dashboard: redraws counters and per-minute throughput charts from the snapshot
// endpoint every few seconds, and pauses while the tab is hidden. No dependencies.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var COUNTS = ["waiting", "queued", "running", "delayed", "completed_last_hour", "failed_last_hour"];

  function drawChart(svg, series) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var width = +svg.getAttribute("width"), height = +svg.getAttribute("height");
    var peak = Math.max.apply(null, series.concat([1]));
    var step = width / series.length;
    series.forEach(function (n, i) {
      var h = n ? Math.max(2, Math.round((n / peak) * (height - 4))) : 0;
      var bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("x", (i * step).toFixed(1));
      bar.setAttribute("y", height - h);
      bar.setAttribute("width", Math.max(1, step - 1).toFixed(1));
      bar.setAttribute("height", h);
      bar.setAttribute("class", "th-bar");
      var title = document.createElementNS(SVG, "title");
      title.textContent = (series.length - i - 1) + " min ago: " + n;
      bar.appendChild(title);
      svg.appendChild(bar);
    });
    var base = document.createElementNS(SVG, "line");
    base.setAttribute("x1", 0); base.setAttribute("x2", width);
    base.setAttribute("y1", height - 0.5); base.setAttribute("y2", height - 0.5);
    base.setAttribute("class", "th-axis");
    svg.appendChild(base);
    var total = series.reduce(function (a, b) { return a + b; }, 0);
    svg.setAttribute("data-total", total);
    svg.setAttribute("aria-label", total + " tasks finished in the last hour, peak " + peak + " per minute");
  }

  function setCount(cell, value) {
    var link = cell.querySelector("a");
    (link || cell).textContent = value;
  }

  function render(queues) {
    queues.forEach(function (q) {
      var row = document.querySelector('tr[data-queue="' + CSS.escape(q.queue) + '"]');
      if (!row) return;
      COUNTS.forEach(function (field) {
        var cell = row.querySelector('[data-field="' + field + '"]');
        if (cell) setCount(cell, q[field]);
      });
      row.querySelector('[data-field="failure_rate"]').textContent = Math.round(q.failure_rate * 100) + "%";
      row.querySelector('[data-field="oldest_waiting_seconds"]').textContent =
        q.oldest_waiting_seconds === null ? "–" : Math.round(q.oldest_waiting_seconds) + " s";
      var state = row.querySelector('[data-field="state"] .th-badge');
      state.textContent = q.paused ? "paused" : "active";
      state.className = "th-badge " + (q.paused ? "th-paused" : "th-active");
      drawChart(row.querySelector("svg.th-chart"), q.throughput);
    });
  }

  function start() {
    var root = document.getElementById("th-dashboard");
    if (!root) return;
    render(JSON.parse(document.getElementById("th-initial").textContent));
    var every = Math.max(1, +root.getAttribute("data-refresh")) * 1000;
    var toggle = document.getElementById("th-autorefresh");
    var stamp = document.getElementById("th-updated");
    var busy = false;

    function refresh() {
      if (busy || document.hidden || !toggle.checked) return;
      busy = true;
      fetch(root.getAttribute("data-snapshot-url"), { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (data) {
          render(data.queues);
          stamp.textContent = "updated " + new Date().toLocaleTimeString();
          stamp.classList.remove("th-stale");
        })
        .catch(function (err) {
          stamp.textContent = "refresh failed (" + err.message + ")";
          stamp.classList.add("th-stale");
        })
        .then(function () { busy = false; });
    }

    setInterval(refresh, every);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
  }

  // The event feed: task events pushed over Server-Sent Events (session cookie), newest first.
  // The stream is closed while the tab is hidden and reopened, from the last event seen, when
  // it is visible again, so a hidden tab holds no connection.
  var FEED_SIZE = 50;
  var TYPES = ["created", "queued", "started", "progress", "completed", "retrying", "failed",
               "dead_lettered", "cancelled", "cancel_requested", "recovered", "requeued"];

  function startFeed() {
    var feed = document.getElementById("th-feed");
    if (!feed || !window.EventSource) return;
    var state = document.getElementById("th-feed-state");
    var source = null, lastId = "";

    function show(type, e) {
      var ev = JSON.parse(e.data);
      lastId = e.lastEventId || lastId;
      var item = document.createElement("li");
      item.className = "th-feed-" + ev.status;
      var link = document.createElement("a");
      link.href = feed.getAttribute("data-task-list") + ev.task + "/change/";
      link.textContent = ev.name;
      var time = new Date(ev.at).toLocaleTimeString();
      item.appendChild(document.createTextNode(time + " " + type.replace("task.", "") + " "));
      item.appendChild(link);
      item.appendChild(document.createTextNode(" · " + ev.queue + " · attempt " + ev.attempt +
        (type === "task.progress" ? " · " + ev.progress + "%" : "")));
      feed.insertBefore(item, feed.firstChild);
      while (feed.children.length > FEED_SIZE) feed.removeChild(feed.lastChild);
    }

    function open() {
      if (source || document.hidden) return;
      var url = feed.getAttribute("data-events-url") + (lastId ? "?last_event_id=" + lastId : "");
      source = new EventSource(url, { withCredentials: true });
      TYPES.forEach(function (kind) {
        source.addEventListener("task." + kind, function (e) { show("task." + kind, e); });
      });
      source.addEventListener("reset", function () { lastId = ""; });
      source.onopen = function () { state.textContent = "live"; state.classList.remove("th-stale"); };
      source.onerror = function () {
        state.textContent = source.readyState === 2 ? "stopped (no access?)" : "reconnecting…";
        state.classList.add("th-stale");
      };
    }

    function close() {
      if (source) source.close();
      source = null;
      state.textContent = "paused (tab hidden)";
    }

    document.addEventListener("visibilitychange", function () { document.hidden ? close() : open(); });
    open();
  }

  function startAll() { start(); startFeed(); }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", startAll);
  else startAll();
})();
