// shardform dashboard: the few behaviours htmx does not cover. No inline
// script anywhere (Content-Security-Policy script-src 'self').
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";

  // Every htmx request carries the session's CSRF token.
  document.addEventListener("htmx:configRequest", function (e) {
    e.detail.headers["X-CSRF-Token"] = csrf;
  });

  // Forms that ask before they act (destroy, delete, power off).
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) {
      e.preventDefault();
    }
  }, true);

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  ready(function () {
    // The organization switcher submits itself when scripts run.
    document.querySelectorAll("select[data-autosubmit]").forEach(function (sel) {
      sel.addEventListener("change", function () { sel.form.submit(); });
      var btn = sel.form.querySelector(".js-hide");
      if (btn) { btn.hidden = true; }
    });

    // Copy buttons.
    document.querySelectorAll("button[data-copy]").forEach(function (btn) {
      btn.addEventListener("click", function () {
        var input = document.getElementById(btn.getAttribute("data-copy"));
        if (!input) { return; }
        input.select();
        var done = function () { btn.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(done, function () { document.execCommand("copy"); done(); });
        } else {
          document.execCommand("copy");
          done();
        }
      });
    });

    // The live Terraform log of a running run (Server-Sent Events).
    var log = document.getElementById("live-log");
    if (log && window.EventSource) {
      var end = document.getElementById("live-end");
      var es = new EventSource(log.getAttribute("data-events"));
      es.addEventListener("log", function (e) {
        var line = JSON.parse(e.data);
        var text = line.text || "";
        if (text.slice(-1) !== "\n") { text += "\n"; }
        log.appendChild(document.createTextNode(text));
        log.scrollTop = log.scrollHeight;
      });
      es.addEventListener("end", function (e) {
        es.close();
        var data = JSON.parse(e.data);
        end.textContent = "Finished: " + data.status + (data.error ? " — " + data.error : "");
        end.setAttribute("data-status", data.status);
        var st = document.getElementById("req-status");
        if (st) { st.textContent = data.status; st.className = "status st-" + data.status; }
        window.setTimeout(function () { window.location.reload(); }, 1500);
      });
      es.addEventListener("error", function (e) {
        if (e.data) {
          es.close();
          end.textContent = "Error: " + JSON.parse(e.data).error;
        }
      });
    }
  });
})();
