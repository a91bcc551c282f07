/* Expansion widget: the learner's next step, inside the course platform.
 *
 *   <div id="next-step"></div>
 *   <script src="https://expansion.example.org/static/campaigns/widget.js"></script>
 *   <script>
 *     ExpansionWidget.mount(document.getElementById("next-step"), {
 *       base: "https://expansion.example.org",   // where Expansion runs
 *       token: "<from POST /api/v1/learners/{id}/widget-token/, made by your server>",
 *       moment: "course_completion",              // a journey moment's slug (optional)
 *       kind: "completion"                        // "completion" | "next_step" | "path"
 *     });
 *   </script>
 *
 * completion: the offer card with a countdown to its expiry (48 hours by default);
 * next_step: a compact "Your next step" card for the dashboard;
 * path: the learning-path progress bar (seed 000, step 4).
 * No cookies, no third-party code; text is inserted as text, the card body is the rendered
 * (sandboxed, escaped) template.
 */
(function () {
  "use strict";

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") { node.textContent = attrs[key]; }
      else if (key === "html") { node.innerHTML = attrs[key]; }
      else { node.setAttribute(key, attrs[key]); }
    });
    (children || []).forEach(function (child) { node.appendChild(child); });
    return node;
  }

  function post(url, token, body) {
    return fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Widget-Token": token },
      body: JSON.stringify(body || {})
    });
  }

  function remaining(until) {
    var ms = new Date(until).getTime() - Date.now();
    if (ms <= 0) { return "expired"; }
    var h = Math.floor(ms / 3600000), m = Math.floor((ms % 3600000) / 60000);
    return h + " h " + (m < 10 ? "0" : "") + m + " min left";
  }

  function card(root, offer, options, compact) {
    var countdown = el("span", { "class": "xw-countdown", text: remaining(offer.expires_at) });
    var cta = el("a", { "class": "xw-cta", href: offer.cta_url, text: compact ? "See it" : "Take the next step" });
    var dismiss = el("button", { "class": "xw-dismiss", type: "button", text: "Not now" });
    var box = el("div", { "class": compact ? "xw-card xw-next" : "xw-card", "data-send": String(offer.send) }, [
      el("div", { "class": "xw-label", text: compact ? "Your next step" : "Well done — what's next" }),
      el("h3", { "class": "xw-title", text: offer.title }),
      el("div", { "class": "xw-body", html: offer.body_html }),
      el("div", { "class": "xw-why", text: "Why you're seeing this: " + offer.reason }),
      el("div", { "class": "xw-actions" }, [cta, dismiss, countdown])
    ]);
    root.appendChild(box);
    post(offer.tracking.impression, options.token);
    var timer = setInterval(function () { countdown.textContent = remaining(offer.expires_at); }, 30000);
    cta.addEventListener("click", function () { post(offer.tracking.accept, options.token); });
    dismiss.addEventListener("click", function () {
      clearInterval(timer);
      post(offer.tracking.dismiss, options.token, { reason: "not_now" });
      box.remove();
    });
  }

  function pathBar(root, path) {
    var percent = path.total ? Math.round(100 * path.completed / path.total) : 0;
    root.appendChild(el("div", { "class": "xw-path" }, [
      el("div", { "class": "xw-label", text: path.path + ": " + path.completed + " of " + path.total + " courses" }),
      el("div", { "class": "xw-bar", role: "progressbar", "aria-valuenow": String(percent), "aria-valuemin": "0", "aria-valuemax": "100" }, [
        el("div", { "class": "xw-fill", style: "width:" + percent + "%" })
      ]),
      el("div", { "class": "xw-next-course", text: path.next ? "Next: " + path.next : "Path complete" })
    ]));
  }

  function mount(root, options) {
    var url = options.base + "/w/offers/?moment=" + encodeURIComponent(options.moment || "");
    return fetch(url, { headers: { "X-Widget-Token": options.token } })
      .then(function (response) { return response.ok ? response.json() : { offer: null, path: null }; })
      .then(function (data) {
        if (options.kind === "path") { if (data.path) { pathBar(root, data.path); } return data; }
        if (data.offer) { card(root, data.offer, options, options.kind === "next_step"); }
        return data;
      });
  }

  window.ExpansionWidget = { mount: mount };
})();
