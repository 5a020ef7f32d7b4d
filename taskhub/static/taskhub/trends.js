// Queues dashboard, "Over time": per queue, the tasks finished in each bucket (completed and
// failed, stacked) and their wait and run time at p50 and p95, over the last hour or the last
// day, drawn as inline SVG from GET /api/metrics/timeseries (taskhub/console/timeseries.py).
// Colours come from console.css classes only, so the charts follow the admin's theme. Refetched
// while the tab is visible and auto-refresh is on. No dependencies.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var WIDTH = 280, HEIGHT = 96, LEFT = 44, RIGHT = 4, TOP = 8, BOTTOM = 16;
  var REFRESH_SECONDS = { "1h": 30, "1d": 300 };

  function make(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function titled(node, text) {
    make("title", {}, node).textContent = text;
    return node;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "–";
    if (value === 0) return "0";
    if (value < 1) return Math.round(value * 1000) + " ms";
    if (value < 60) return (value < 10 ? value.toFixed(2) : value.toFixed(1)) + " s";
    if (value < 3600) return (value / 60).toFixed(1) + " min";
    return (value / 3600).toFixed(1) + " h";
  }

  function clock(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // The smallest 1, 2 or 5 × 10^n at least `value`: a round top for the y axis.
  function roundUp(value) {
    if (!(value > 0)) return 1;
    var power = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * power >= value) return steps[i] * power;
    return 10 * power;
  }

  // Axes, grid and labels shared by every chart; returns the x and y of a bucket and a value.
  function frame(svg, data, top, label) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var plotW = WIDTH - LEFT - RIGHT, plotH = HEIGHT - TOP - BOTTOM;
    var n = data.buckets.length, step = plotW / n;
    [0, 0.5, 1].forEach(function (f) {
      var y = TOP + plotH * (1 - f);
      make("line", { x1: LEFT, x2: WIDTH - RIGHT, y1: y, y2: y, "class": f ? "th-grid" : "th-axis" }, svg);
      make("text", { x: LEFT - 4, y: y + 3, "text-anchor": "end" }, svg).textContent = label(top * f);
    });
    make("text", { x: LEFT, y: HEIGHT - 3 }, svg).textContent = clock(data.buckets[0]);
    make("text", { x: WIDTH - RIGHT, y: HEIGHT - 3, "text-anchor": "end" }, svg).textContent = "now";
    return {
      step: step,
      x: function (i) { return LEFT + i * step; },
      y: function (v) { return TOP + plotH * (1 - v / top); },
      base: TOP + plotH
    };
  }

  function bucketName(data, i) {
    var minutes = data.bucketSeconds / 60;
    return clock(data.buckets[i]) + (minutes > 1 ? " (" + minutes + " min)" : "");
  }

  function drawThroughput(svg, data, queue) {
    var totals = queue.completed.map(function (c, i) { return c + queue.failed[i]; });
    var top = roundUp(Math.max.apply(null, totals.concat([1])));
    var at = frame(svg, data, top, function (v) { return Number.isInteger(v) ? String(v) : ""; });
    var width = Math.max(1, at.step - 1).toFixed(2);
    totals.forEach(function (total, i) {
      if (!total) return;
      var x = at.x(i).toFixed(2), done = queue.completed[i], failed = queue.failed[i];
      var doneTop = at.y(done), failedTop = at.y(total);
      var column = titled(make("g", {}, svg),
        bucketName(data, i) + ": " + done + " completed, " + failed + " failed");
      if (done) make("rect", { x: x, y: doneTop, width: width, height: at.base - doneTop, "class": "th-bar-completed" }, column);
      if (failed) make("rect", { x: x, y: failedTop, width: width, height: doneTop - failedTop, "class": "th-bar-failed" }, column);
    });
    var sum = totals.reduce(function (a, b) { return a + b; }, 0);
    svg.setAttribute("data-total", sum);
    svg.setAttribute("aria-label", sum + " tasks finished, at most " + Math.max.apply(null, totals) +
      " in " + (data.bucketSeconds / 60) + " min");
  }

  // p50 and p95 as lines, broken where a bucket has no value; a lone point is a dot.
  function drawPercentiles(svg, data, p50, p95, what) {
    var values = p95.concat(p50).filter(function (v) { return v !== null; });
    var top = roundUp(Math.max.apply(null, values.concat([0.001])));
    var at = frame(svg, data, top, seconds);
    // p95 first, so that where both are equal (one task in a bucket) the p50 shows on top
    [["p95", p95], ["p50", p50]].forEach(function (pair) {
      var name = pair[0], series = pair[1], run = [];
      function flush() {
        if (run.length === 1) {
          make("circle", { cx: run[0][0], cy: run[0][1], r: 2, "class": "th-dot-" + name }, svg);
        } else if (run.length > 1) {
          make("polyline", { points: run.map(function (p) { return p.join(","); }).join(" "),
                             "class": "th-line th-line-" + name }, svg);
        }
        run = [];
      }
      series.forEach(function (v, i) {
        if (v === null) { flush(); return; }
        run.push([(at.x(i) + at.step / 2).toFixed(2), at.y(v).toFixed(2)]);
      });
      flush();
    });
    p50.forEach(function (v, i) {
      if (v === null) return;
      titled(make("rect", { x: at.x(i).toFixed(2), y: TOP, width: at.step.toFixed(2), height: at.base - TOP, "class": "th-hover" }, svg),
        bucketName(data, i) + ": " + what + " p50 " + seconds(v) + ", p95 " + seconds(p95[i]));
    });
    var points = p50.filter(function (v) { return v !== null; }).length;
    svg.setAttribute("data-points", points);
    svg.setAttribute("aria-label", what + " p50 and p95 in " + points + " buckets, up to " +
      seconds(Math.max.apply(null, values.concat([0]))));
  }

  var CHARTS = [
    ["throughput", "Finished"],
    ["wait", "Wait (queued → started)"],
    ["run", "Run time (completed)"]
  ];

  function card(list, name) {
    var found = list.querySelector('.th-trend[data-queue="' + CSS.escape(name) + '"]');
    if (found) return found;
    var box = document.createElement("div");
    box.className = "th-trend";
    box.setAttribute("data-queue", name);
    box.appendChild(document.createElement("h3")).textContent = name;
    var charts = box.appendChild(document.createElement("div"));
    charts.className = "th-trend-charts";
    CHARTS.forEach(function (chart) {
      var figure = charts.appendChild(document.createElement("figure"));
      figure.appendChild(document.createElement("figcaption")).textContent = chart[1];
      make("svg", { "class": "th-trend-chart", "data-chart": chart[0], width: WIDTH, height: HEIGHT,
                    viewBox: "0 0 " + WIDTH + " " + HEIGHT, role: "img" }, figure);
    });
    return box;
  }

  function render(root, data) {
    var list = root.querySelector("#th-trend-list");
    var idle = [], shown = [];
    data.queues.forEach(function (queue) {
      var busy = queue.completed.some(Boolean) || queue.failed.some(Boolean);
      if (!busy) { idle.push(queue.queue); return; }
      var box = card(list, queue.queue);
      box.querySelector("figcaption").textContent = "Finished per " +
        (data.bucketSeconds === 60 ? "minute" : data.bucketSeconds / 60 + " min");
      drawThroughput(box.querySelector('[data-chart="throughput"]'), data, queue);
      drawPercentiles(box.querySelector('[data-chart="wait"]'), data, queue.waitP50, queue.waitP95, "wait");
      drawPercentiles(box.querySelector('[data-chart="run"]'), data, queue.runP50, queue.runP95, "run time");
      shown.push(box);
    });
    while (list.firstChild) list.removeChild(list.firstChild);
    shown.forEach(function (box) { list.appendChild(box); });
    var span = data.window === "1d" ? "the last day" : "the last hour";
    root.querySelector("#th-trends-idle").textContent = idle.length
      ? "No task finished in " + span + " on " + idle.join(", ") + "." : "";
  }

  function start() {
    var root = document.getElementById("th-trends");
    if (!root) return;
    var state = document.getElementById("th-trends-state");
    var toggle = document.getElementById("th-autorefresh");
    var buttons = root.querySelectorAll("[data-window]");
    var windowName = "1h", timer = null, busy = false;

    function load(force) {
      if (busy || (!force && (document.hidden || (toggle && !toggle.checked)))) return;
      busy = true;
      var url = root.getAttribute("data-url") + "?window=" + encodeURIComponent(windowName);
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (data) {
          if (data.window !== windowName) return;  // an answer for the window left behind
          render(root, data);
          root.setAttribute("data-window", data.window);
          state.textContent = "updated " + new Date().toLocaleTimeString();
          state.classList.remove("th-stale");
        })
        .catch(function (err) {
          state.textContent = "could not load (" + err.message + ")";
          state.classList.add("th-stale");
        })
        .then(function () { busy = false; });
    }

    function schedule() {
      if (timer) clearInterval(timer);
      timer = setInterval(load, REFRESH_SECONDS[windowName] * 1000);
    }

    Array.prototype.forEach.call(buttons, function (button) {
      button.addEventListener("click", function () {
        windowName = button.getAttribute("data-window");
        Array.prototype.forEach.call(buttons, function (b) {
          b.setAttribute("aria-pressed", b === button ? "true" : "false");
        });
        busy = false;
        load(true);
        schedule();
      });
    });
    document.addEventListener("visibilitychange", function () { if (!document.hidden) load(); });
    load(true);
    schedule();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
