// Keyboard shortcuts of the task list (the admin's Task changelist; TaskAdmin.Media loads this):
// j / k next and previous row, Enter or o opens it, r retries it through the list's own "Retry"
// action (so its confirmation page comes first), / focuses the search box, ? shows the keys.
// Keys typed into a field, or with Ctrl, Cmd or Alt, are left alone. No dependencies.
(function () {
  "use strict";
  var RETRY_ACTION = "retry_tasks";
  var KEYS = [
    ["j", "next task"],
    ["k", "previous task"],
    ["Enter / o", "open the task"],
    ["r", "retry the task (asks for confirmation)"],
    ["/", "search"],
    ["?", "show or hide these keys"],
    ["Esc", "close this help, leave the search box"]
  ];

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function start() {
    var table = document.getElementById("result_list");
    if (!table) return;  // the task's own page loads this script too
    var form = document.getElementById("changelist-form");
    var current = -1;

    function rows() { return Array.prototype.slice.call(table.tBodies[0].rows); }

    function link(row) { return row.querySelector("th a, td a"); }

    function select(index) {
      var all = rows();
      if (!all.length) return;
      current = Math.max(0, Math.min(all.length - 1, index));
      all.forEach(function (row, i) {
        row.classList.toggle("th-kbd-current", i === current);
        if (i === current) row.setAttribute("aria-current", "true");
        else row.removeAttribute("aria-current");
      });
      var target = link(all[current]);
      if (target) target.focus();
      all[current].scrollIntoView({ block: "nearest" });
    }

    function open() {
      var row = rows()[current];
      var target = row && link(row);
      if (target) window.location.assign(target.href);
    }

    function notice(text) {
      var box = document.getElementById("th-kbd-notice");
      if (!box) {
        box = document.createElement("p");
        box.id = "th-kbd-notice";
        box.className = "th-warning";
        box.setAttribute("role", "status");
        table.parentNode.insertBefore(box, table);
      }
      box.textContent = text;
    }

    // The list's own action, on this row alone: Django's action form posts it and the
    // confirmation page (taskhub/console/admin_tools.py confirm_then) answers first.
    function retry() {
      var row = rows()[current];
      var action = form && form.querySelector("select[name=action]");
      var go = form && form.querySelector("button[name=index]");
      if (!row || !action || !go || !action.querySelector('option[value="' + RETRY_ACTION + '"]')) {
        notice("Retrying needs the operator role.");
        return;
      }
      var across = form.querySelector("input[name=select_across]");
      if (across) across.value = "0";
      Array.prototype.forEach.call(table.querySelectorAll("input.action-select"), function (box) {
        var wanted = row.contains(box);
        if (box.checked !== wanted) {
          box.checked = wanted;
          box.dispatchEvent(new Event("change", { bubbles: true }));
        }
      });
      action.value = RETRY_ACTION;
      go.click();
    }

    var help = null;
    function toggleHelp() {
      if (!help) {
        help = document.createElement("dialog");
        help.className = "th-shortcuts";
        help.id = "th-shortcuts";
        help.setAttribute("aria-label", "Keyboard shortcuts");
        var title = help.appendChild(document.createElement("h2"));
        title.textContent = "Keyboard shortcuts";
        var list = help.appendChild(document.createElement("table"));
        KEYS.forEach(function (pair) {
          var tr = list.insertRow();
          var keys = tr.insertCell();
          pair[0].split(" / ").forEach(function (key, i) {
            if (i) keys.appendChild(document.createTextNode(" or "));
            keys.appendChild(document.createElement("kbd")).textContent = key;
          });
          tr.insertCell().textContent = pair[1];
        });
        document.body.appendChild(help);
      }
      if (help.open) help.close();
      else help.showModal();
    }

    var search = document.getElementById("searchbar");
    var hint = document.createElement("span");
    hint.className = "th-kbd-hint";
    hint.innerHTML = "Press <kbd>?</kbd> for keyboard shortcuts";
    (document.getElementById("changelist-search") || table.parentNode).appendChild(hint);

    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey || event.defaultPrevented) return;
      if (typing(event.target)) {
        if (event.key === "Escape" && event.target === search) search.blur();
        return;
      }
      if (help && help.open && event.key !== "?") return;  // the dialog handles Esc itself
      var key = event.key;
      if (key === "j") select(current + 1);
      else if (key === "k") select(current < 0 ? 0 : current - 1);
      else if (key === "o" && current >= 0) open();
      else if (key === "Enter" && current >= 0 && event.target === document.body) open();
      else if (key === "r" && current >= 0) retry();
      else if (key === "/" && search) search.focus();
      else if (key === "?") toggleHelp();
      else return;
      event.preventDefault();
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
