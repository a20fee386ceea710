// Sandpit console. Each page is a server-rendered shell; this script fills
// it from the API (the same one the CLI uses), authenticated by the
// session cookie, with the page's CSRF token on every state change.
"use strict";

(function () {
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const page = document.body.dataset.page;
  const pageName = document.body.dataset.name || "";

  // ---- helpers ---------------------------------------------------------

  // el builds an element: el("a", {href: "/x", class: "y"}, "text", child).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const $ = (sel, root) => (root || document).querySelector(sel);

  class APIError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || "request failed with status " + status);
      this.status = status;
      this.hint = e.hint || "";
      this.details = e.details || [];
    }
  }

  function toSignIn() {
    location.assign("/sign-in?next=" + encodeURIComponent(location.pathname + location.search));
  }

  // api calls the API; it resolves with the decoded JSON (or null).
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
    if (resp.status === 401) {
      toSignIn();
      throw new APIError(401, { error: { message: "signed out" } });
    }
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
    if (!resp.ok) throw new APIError(resp.status, data);
    return data;
  }

  let toastTimer;
  function toast(msg, bad) {
    const t = $("#toast");
    t.textContent = msg;
    t.className = "toast show" + (bad ? " bad" : "");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.className = "toast"; }, bad ? 8000 : 3000);
  }

  function errorText(err) {
    return err.message + (err.hint ? " — " + err.hint : "");
  }

  function fmtDur(ms) {
    if (ms < 0) ms = 0;
    if (ms < 1000) return Math.round(ms) + " ms";
    const s = ms / 1000;
    if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m " + Math.round(s % 60) + "s";
    const h = Math.floor(m / 60);
    if (h < 48) return h + "h " + (m % 60) + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  // fmtRel is a coarse duration for ages and countdowns.
  function fmtRel(ms) {
    const s = Math.abs(ms) / 1000;
    if (s < 60) return Math.round(s) + "s";
    if (s < 3600) return Math.round(s / 60) + "m";
    if (s < 172800) return Math.floor(s / 3600) + "h " + Math.round((s % 3600) / 60) + "m";
    return Math.round(s / 86400) + "d";
  }
  function fmtTime(iso) {
    if (!iso) return "";
    return new Date(iso).toLocaleString();
  }
  function fmtBytes(n) {
    if (!n) return "—";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }
  function timeEl(iso, text) {
    return el("time", { datetime: iso, title: fmtTime(iso) }, text);
  }

  function phaseOf(sb) { return (sb.status && sb.status.phase) || "Pending"; }
  function phaseBadge(sb) {
    const p = phaseOf(sb);
    return el("span", { class: "phase " + p }, p);
  }
  function sourceOf(sb) {
    const g = sb.spec.git;
    if (g) return g.pr ? "PR #" + g.pr + (g.branch ? " (" + g.branch + ")" : "") : g.branch;
    return sb.spec.ref || (sb.status && sb.status.ref) || "";
  }
  function ownerOf(sb) { return sb.spec.created_by || (sb.spec.git && sb.spec.git.author) || ""; }

  // timeLeft says when the lifecycle acts next: idle suspend, TTL, or the
  // end of a failed or suspended sandbox's retention.
  function timeLeft(sb, now) {
    const d = sb.deadlines;
    if (!d) return sb.spec.pin ? "pinned" : "";
    const parts = [];
    if (d.suspend_at) parts.push("suspends in " + fmtRel(new Date(d.suspend_at) - now));
    if (d.expires_at) parts.push("TTL " + fmtRel(new Date(d.expires_at) - now));
    if (d.delete_at) parts.push("deleted in " + fmtRel(new Date(d.delete_at) - now));
    return parts.join(" · ");
  }

  function endpointLinks(sb) {
    return ((sb.status && sb.status.endpoints) || []).map((ep) =>
      el("a", { href: ep.url, rel: "noopener", target: "_blank", class: "endpoint", "aria-label": "Open endpoint " + ep.name + " of " + sb.name }, ep.name));
  }

  // watch opens a server-sent event stream and reports its state.
  function watch(url, handlers, onState) {
    const es = new EventSource(url, { withCredentials: true });
    for (const [name, fn] of Object.entries(handlers)) {
      es.addEventListener(name, (e) => fn(JSON.parse(e.data)));
    }
    es.onopen = () => onState && onState(true);
    es.onerror = () => onState && onState(false);
    return es;
  }

  // ---- sandboxes list --------------------------------------------------

  function sandboxesPage() {
    const form = $("#filters");
    const params = new URLSearchParams(location.search);
    for (const k of ["q", "owner", "template", "phase"]) {
      const f = form.elements[k];
      if (params.get(k)) {
        if (f.tagName === "SELECT" && ![...f.options].some((o) => o.value === params.get(k))) f.append(el("option", { value: params.get(k) }, params.get(k)));
        f.value = params.get(k);
      }
    }
    let items = [];
    let updated = null;
    const tbody = $("#sandboxes tbody");

    function fillOptions(select, values) {
      const cur = select.value;
      const have = new Set([...select.options].map((o) => o.value));
      for (const v of values) if (v && !have.has(v)) select.append(el("option", { value: v }, v));
      select.value = cur;
    }

    function render() {
      const f = Object.fromEntries(new FormData(form));
      const q = (f.q || "").toLowerCase();
      const now = Date.now();
      fillOptions(form.elements.owner, [...new Set(items.map(ownerOf))].sort());
      fillOptions(form.elements.template, [...new Set(items.map((s) => s.spec.template))].sort());
      const shown = items.filter((sb) =>
        (!f.owner || ownerOf(sb) === f.owner) &&
        (!f.template || sb.spec.template === f.template) &&
        (!f.phase || phaseOf(sb) === f.phase) &&
        (!q || [sb.name, sourceOf(sb), sb.spec.template, ownerOf(sb)].join(" ").toLowerCase().includes(q)));
      tbody.replaceChildren(...shown.map((sb) => el("tr", { "data-name": sb.name },
        el("td", { "data-label": "Name" }, el("a", { href: "/sandboxes/" + encodeURIComponent(sb.name) }, sb.name)),
        el("td", { "data-label": "Template" }, sb.spec.template + " v" + sb.spec.template_version),
        el("td", { "data-label": "Branch / PR" }, sourceOf(sb)),
        el("td", { "data-label": "Owner" }, ownerOf(sb)),
        el("td", { "data-label": "Phase" }, phaseBadge(sb)),
        el("td", { "data-label": "Endpoints" }, ...endpointLinks(sb).flatMap((a, i) => (i ? [" ", a] : [a]))),
        el("td", { "data-label": "Age" }, timeEl(sb.created_at, fmtRel(now - new Date(sb.created_at)))),
        el("td", { "data-label": "Time left" }, timeLeft(sb, now)),
        el("td", { "data-label": "Pinned" }, sb.spec.pin ? "Pinned" : ""))));
      $("#empty").hidden = shown.length > 0;
    }

    form.addEventListener("input", () => {
      const f = new URLSearchParams();
      for (const [k, v] of new FormData(form)) if (v) f.set(k, v);
      history.replaceState(null, "", f.toString() ? "?" + f : location.pathname);
      render();
    });
    form.addEventListener("submit", (e) => e.preventDefault());
    const live = $("#live");
    watch("/api/v1/sandboxes?watch=true", {
      sandboxes: (list) => { items = list.items || []; updated = new Date(); live.textContent = "Live · " + items.length + " sandbox" + (items.length === 1 ? "" : "es") + " · updated " + updated.toLocaleTimeString(); render(); },
    }, (ok) => { if (!ok) live.textContent = "Reconnecting…"; });
    setInterval(render, 30000); // ages and countdowns
  }

  // ---- one sandbox -----------------------------------------------------

  function sandboxPage() {
    const name = pageName;
    const path = "/api/v1/sandboxes/" + encodeURIComponent(name);
    let sb = null;
    let gone = false;

    function fact(dl, label, ...value) {
      if (value.length === 0 || value[0] === "" || value[0] === null || value[0] === undefined) return;
      dl.append(el("dt", {}, label), el("dd", {}, ...value));
    }

    function render() {
      const st = sb.status || {};
      const badge = $("#sb-phase");
      badge.className = "phase " + phaseOf(sb);
      badge.textContent = phaseOf(sb);
      $("#sb-message").textContent = st.message || "";
      const dl = $("#sb-facts");
      dl.replaceChildren();
      const now = Date.now();
      fact(dl, "Template", el("a", { href: "/templates/" + encodeURIComponent(sb.spec.template) }, sb.spec.template), " version " + sb.spec.template_version);
      fact(dl, "Source", [sourceOf(sb), st.sha ? "@ " + st.sha.slice(0, 12) : ""].filter(Boolean).join(" "));
      fact(dl, "Owner", ownerOf(sb));
      fact(dl, "Created", timeEl(sb.created_at, fmtTime(sb.created_at)));
      if (st.ready_at) fact(dl, "Ready", timeEl(st.ready_at, fmtTime(st.ready_at)), st.timing ? " (launch took " + fmtDur(st.timing.total_ms) + ")" : "");
      fact(dl, "Lifecycle", timeLeft(sb, now) || "none");
      if (sb.spec.pin) fact(dl, "Pinned", "by " + sb.spec.pin.by);
      if (st.suspend_reason && phaseOf(sb) === "Suspended") fact(dl, "Suspended", st.suspend_reason);
      if (st.resources) fact(dl, "Resources", st.resources.class + (st.resources.enforced ? "" : " (not enforced)"));

      $("#endpoints").replaceChildren(...((st.endpoints || []).map((ep) =>
        el("a", { class: "button primary", href: ep.url, target: "_blank", rel: "noopener" }, "Open " + ep.name))));

      const p = phaseOf(sb);
      const deleting = p === "Deleting" || !!sb.spec.deletion_requested_at || gone;
      for (const b of document.querySelectorAll("#actions button, #extend-form button, #extend-form select")) b.disabled = deleting;
      $('[data-action="suspend"]').disabled = deleting || !(p === "Ready" || p === "Provisioning");
      $('[data-action="resume"]').disabled = deleting || p !== "Suspended";
      const pin = $('[data-action="pin"]');
      pin.textContent = sb.spec.pin ? "Unpin" : "Pin";
      pin.setAttribute("aria-pressed", sb.spec.pin ? "true" : "false");

      $("#services tbody").replaceChildren(...(st.services || []).map((s) => el("tr", {},
        el("td", { "data-label": "Service" }, s.name),
        el("td", { "data-label": "State" }, s.state),
        el("td", { "data-label": "Ready" }, s.ready ? "yes" : "no"),
        el("td", { "data-label": "Restarts" }, String(s.restarts || 0)),
        el("td", { "data-label": "Message" }, s.message || ""))));
      $("#dependencies tbody").replaceChildren(...(st.dependencies || []).map((d) => el("tr", {},
        el("td", { "data-label": "Dependency" }, d.name),
        el("td", { "data-label": "Type" }, d.type + " " + d.version),
        el("td", { "data-label": "State" }, d.state),
        el("td", { "data-label": "Ready" }, d.ready ? "yes" : "no"),
        el("td", { "data-label": "Snapshot" }, d.snapshot || "—"))));

      renderTimeline(st);
      fillServices(st);
      fillRestore(st);
    }

    // renderTimeline draws the launch's stages as bars on one time axis, so
    // the slow one stands out; the same figures are in the bars' labels.
    function renderTimeline(st) {
      const box = $("#timeline");
      const stages = st.stages || [];
      if (!stages.length) { box.replaceChildren(el("p", { class: "muted" }, "No launch recorded yet.")); return; }
      const now = Date.now();
      const t0 = Math.min(...stages.map((s) => new Date(s.started_at).getTime()));
      const end = (s) => (s.finished_at ? new Date(s.finished_at).getTime() : now);
      const t1 = Math.max(...stages.map(end), t0 + 1);
      // Drawn at the box's own width, one unit a pixel, so text keeps its
      // size on a phone instead of shrinking with the picture.
      const W = Math.max(300, box.clientWidth || 720), labelW = Math.min(170, Math.round(W * 0.3)), durW = 72, rowH = 22, top = 4;
      const scale = (W - labelW - durW) / (t1 - t0);
      const ns = "http://www.w3.org/2000/svg";
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("viewBox", "0 0 " + W + " " + (top + rowH * stages.length + 4));
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", "Launch timeline: " + stages.map((s) => s.name + " " + s.state + " " + fmtDur(end(s) - new Date(s.started_at))).join(", "));
      stages.forEach((s, i) => {
        const y = top + i * rowH;
        const x = labelW + (new Date(s.started_at) - t0) * scale;
        const w = Math.max(2, (end(s) - new Date(s.started_at)) * scale);
        const label = document.createElementNS(ns, "text");
        label.setAttribute("x", 0); label.setAttribute("y", y + 15);
        label.textContent = s.name;
        const rect = document.createElementNS(ns, "rect");
        rect.setAttribute("x", x); rect.setAttribute("y", y + 3); rect.setAttribute("width", w); rect.setAttribute("height", rowH - 6);
        rect.setAttribute("class", "bar-" + s.state);
        const title = document.createElementNS(ns, "title");
        title.textContent = s.name + ": " + s.state + ", " + fmtDur(end(s) - new Date(s.started_at)) + (s.message ? " — " + s.message : "");
        rect.append(title);
        const dur = document.createElementNS(ns, "text");
        dur.setAttribute("x", W - durW + 6); dur.setAttribute("y", y + 15);
        dur.textContent = fmtDur(end(s) - new Date(s.started_at)) + (s.state === "running" ? "…" : s.state === "failed" ? " ✗" : "");
        svg.append(label, rect, dur);
      });
      const parts = [el("p", { class: "muted" }, st.timing ? "Total " + fmtDur(st.timing.total_ms) + ": " + fmtDur(st.timing.external_ms) + " waiting on git, builds, dependencies and probes, " + fmtDur(st.timing.overhead_ms) + " Sandpit's own." : "")];
      box.replaceChildren(svg, ...parts);
    }

    window.addEventListener("resize", () => sb && renderTimeline(sb.status || {}));

    // ---- logs
    const logBox = $("#logs");
    let logLines = [];
    let logAbort = null;
    let knownUnits = "";

    function fillServices(st) {
      const units = [...(st.services || []).map((s) => s.name), ...(st.dependencies || []).map((d) => d.name)];
      const key = units.join(",");
      if (key === knownUnits) return;
      knownUnits = key;
      const sel = $("#log-service");
      const cur = sel.value;
      sel.replaceChildren(el("option", { value: "" }, "All"), ...units.map((u) => el("option", { value: u }, u)));
      sel.value = units.includes(cur) ? cur : "";
    }

    function lineEl(l) {
      const q = $("#log-search").value;
      const text = l.text;
      const parts = [el("span", { class: "svc" }, l.service + " | ")];
      if (q && text.toLowerCase().includes(q.toLowerCase())) {
        const i = text.toLowerCase().indexOf(q.toLowerCase());
        parts.push(text.slice(0, i), el("mark", {}, text.slice(i, i + q.length)), text.slice(i + q.length));
      } else parts.push(text);
      return el("span", { class: "line " + (l.stream || "") }, ...parts, "\n");
    }
    function renderLogs() {
      const q = $("#log-search").value.toLowerCase();
      const shown = q ? logLines.filter((l) => l.text.toLowerCase().includes(q) || l.service.toLowerCase().includes(q)) : logLines;
      logBox.replaceChildren(...shown.slice(-2000).map(lineEl));
      logBox.scrollTop = logBox.scrollHeight;
    }
    function addLog(l) {
      logLines.push(l);
      if (logLines.length > 5000) logLines = logLines.slice(-4000);
      const q = $("#log-search").value.toLowerCase();
      if (q && !l.text.toLowerCase().includes(q)) return;
      const atBottom = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 20;
      logBox.append(lineEl(l));
      if (atBottom) logBox.scrollTop = logBox.scrollHeight;
    }
    async function streamLogs() {
      if (logAbort) logAbort.abort();
      logAbort = new AbortController();
      const signal = logAbort.signal;
      logLines = [];
      renderLogs();
      const svc = $("#log-service").value;
      const follow = $("#log-follow").checked;
      const q = new URLSearchParams({ tail: "1000" });
      if (svc) q.set("service", svc);
      if (follow) q.set("follow", "true");
      $("#log-download").href = "#";
      try {
        const resp = await fetch(path + "/logs?" + q, { signal, headers: { Accept: "application/x-ndjson" } });
        if (resp.status === 401) return toSignIn();
        if (!resp.ok) {
          let msg = "status " + resp.status;
          try { msg = (await resp.json()).error.message; } catch (_) { /* keep the status */ }
          logBox.replaceChildren(el("span", { class: "stderr" }, "logs unavailable: " + msg));
          return;
        }
        const reader = resp.body.getReader();
        const dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let nl;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim()) { try { addLog(JSON.parse(line)); } catch (_) { /* partial line */ } }
          }
        }
      } catch (e) {
        if (e.name !== "AbortError") logBox.append(el("span", { class: "stderr" }, "log stream ended: " + e.message + "\n"));
      }
    }
    $("#log-service").addEventListener("change", streamLogs);
    $("#log-follow").addEventListener("change", streamLogs);
    $("#log-search").addEventListener("input", renderLogs);
    $("#logs-form").addEventListener("submit", (e) => e.preventDefault());
    $("#log-download").addEventListener("click", async (e) => {
      e.preventDefault();
      const svc = $("#log-service").value;
      try {
        const resp = await fetch(path + "/logs" + (svc ? "?service=" + encodeURIComponent(svc) : ""), { headers: { Accept: "application/x-ndjson" } });
        if (!resp.ok) throw new Error("status " + resp.status);
        const text = (await resp.text()).split("\n").filter(Boolean).map((l) => { const o = JSON.parse(l); return o.time + " " + o.service + " " + o.stream + " " + o.text; }).join("\n") + "\n";
        const a = el("a", { href: URL.createObjectURL(new Blob([text], { type: "text/plain" })), download: name + (svc ? "-" + svc : "") + ".log" });
        document.body.append(a);
        a.click();
        a.remove();
      } catch (err) { toast("Download failed: " + err.message, true); }
    });

    // ---- events
    const evList = $("#events");
    function addEvent(ev) {
      evList.prepend(el("li", { class: ev.type },
        timeEl(ev.time, new Date(ev.time).toLocaleTimeString()),
        el("strong", {}, ev.reason + ": "), ev.message));
      while (evList.children.length > 300) evList.lastChild.remove();
    }

    // ---- actions
    async function act(label, method, suffix, body) {
      try {
        sb = await api(method, path + suffix, body);
        if (sb) render();
        toast(label);
      } catch (e) { toast(label + " failed: " + errorText(e), true); }
    }
    $('[data-action="suspend"]').addEventListener("click", () => act("Suspending", "POST", "/suspend"));
    $('[data-action="resume"]').addEventListener("click", () => act("Resuming", "POST", "/resume"));
    $('[data-action="pin"]').addEventListener("click", () => act(sb.spec.pin ? "Unpinned" : "Pinned", sb.spec.pin ? "DELETE" : "PUT", "/pin"));
    $("#extend-form").addEventListener("submit", (e) => { e.preventDefault(); act("Extended", "POST", "/extend", { by: $("#extend-by").value }); });
    const dlg = $("#confirm-delete");
    $('[data-action="delete"]').addEventListener("click", () => dlg.showModal());
    dlg.addEventListener("close", () => { if (dlg.returnValue === "delete") act("Deleting", "DELETE", ""); });

    let snapshots = null;
    async function fillRestore(st) {
      const deps = st.dependencies || [];
      const form = $("#restore-form");
      if (!deps.length) { form.hidden = true; return; }
      if (snapshots === null) {
        snapshots = [];
        try { snapshots = ((await api("GET", "/api/v1/snapshots")) || {}).items || []; } catch (_) { /* the list stays empty */ }
      }
      const depSel = $("#restore-dep");
      if (depSel.options.length !== deps.length) depSel.replaceChildren(...deps.map((d) => el("option", { value: d.name }, d.name)));
      const dep = deps.find((d) => d.name === depSel.value) || deps[0];
      const fit = snapshots.filter((s) => s.type === dep.type && s.version === dep.version && s.phase === "Ready");
      const snapSel = $("#restore-snap");
      const cur = snapSel.value;
      snapSel.replaceChildren(...fit.map((s) => el("option", { value: s.name }, s.name)));
      if (fit.some((s) => s.name === cur)) snapSel.value = cur;
      form.hidden = fit.length === 0;
    }
    $("#restore-dep").addEventListener("change", () => sb && fillRestore(sb.status || {}));
    $("#restore-form").addEventListener("submit", (e) => {
      e.preventDefault();
      act("Restoring " + $("#restore-dep").value, "POST", "/dependencies/" + encodeURIComponent($("#restore-dep").value) + "/restore", { snapshot: $("#restore-snap").value });
    });

    // ---- live state
    let logsStarted = false;
    watch(path + "/events?follow=true", {
      sandbox: (s) => {
        sb = s;
        render();
        if (!logsStarted) { logsStarted = true; streamLogs(); }
      },
      event: addEvent,
      deleted: () => {
        gone = true;
        $("#sb-phase").className = "phase Deleting";
        $("#sb-phase").textContent = "Deleted";
        $("#sb-message").textContent = "This sandbox has been deleted. Back to the list…";
        if (logAbort) logAbort.abort();
        setTimeout(() => location.assign("/"), 1500);
      },
    }, async (ok) => {
      if (ok || sb || gone) return;
      try { await api("GET", path); } catch (e) {
        $("#sb-message").textContent = errorText(e);
        $("#sb-phase").textContent = "Not found";
      }
    });
  }

  // ---- create ----------------------------------------------------------

  function parseSet(text) {
    const set = {};
    const bad = [];
    text.split("\n").map((l) => l.trim()).filter(Boolean).forEach((l, i) => {
      const eq = l.indexOf("=");
      if (eq <= 0) bad.push("line " + (i + 1) + ": \"" + l + "\" is not KEY=VALUE");
      else set[l.slice(0, eq).trim()] = l.slice(eq + 1);
    });
    return { set, bad };
  }

  async function newPage() {
    const form = $("#create-form");
    const tsel = $("#c-template");
    const want = tsel.dataset.value;
    try {
      const list = (await api("GET", "/api/v1/templates")) || {};
      for (const t of list.items || []) tsel.append(el("option", { value: t.name }, t.name + (t.description ? " — " + t.description : "")));
    } catch (e) { showError(e); }
    if (want) {
      if (![...tsel.options].some((o) => o.value === want)) tsel.append(el("option", { value: want }, want + " (unknown)"));
      tsel.value = want;
    }
    const errBox = $("#create-error");
    function showError(e) {
      errBox.hidden = false;
      errBox.replaceChildren(el("p", {}, errorText(e)), ...(e.details && e.details.length ? [el("ul", {}, ...e.details.map((d) => el("li", {}, (d.pos ? d.pos + ": " : d.path ? d.path + ": " : "") + d.message)))] : []));
    }
    let defaultName = "";
    async function update() {
      const { set } = parseSet($("#c-set").value);
      const q = new URLSearchParams();
      if (tsel.value) q.set("template", tsel.value);
      if ($("#c-ref").value.trim()) q.set("ref", $("#c-ref").value.trim());
      if ($("#c-name").value.trim()) q.set("name", $("#c-name").value.trim());
      for (const [k, v] of Object.entries(set)) q.set("set." + k, v);
      $("#share-link").value = location.origin + "/launch?" + q;
      defaultName = "";
      if (!tsel.value) return;
      const nq = new URLSearchParams(q);
      nq.delete("name");
      try {
        const r = await fetch("/new/name?" + nq, { headers: { Accept: "application/json" } });
        if (r.ok) defaultName = (await r.json()).name;
      } catch (_) { /* offline: no default shown */ }
      $("#c-name").placeholder = defaultName;
      const name = $("#c-name").value.trim() || defaultName;
      const ex = $("#existing");
      ex.hidden = true;
      if (name) {
        try {
          await api("GET", "/api/v1/sandboxes/" + encodeURIComponent(name));
          $("#existing-link").textContent = name;
          $("#existing-link").href = "/sandboxes/" + encodeURIComponent(name);
          ex.hidden = false;
        } catch (_) { /* none yet */ }
      }
    }
    form.addEventListener("input", update);
    form.addEventListener("change", update);
    update();
    $("#copy-link").addEventListener("click", async () => {
      try { await navigator.clipboard.writeText($("#share-link").value); toast("Link copied"); } catch (_) { $("#share-link").select(); toast("Press Ctrl+C to copy"); }
    });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      errBox.hidden = true;
      const { set, bad } = parseSet($("#c-set").value);
      if (!tsel.value) { showError(new Error("Choose a template.")); tsel.focus(); return; }
      if (bad.length) { showError({ message: "Overrides: " + bad.join("; "), details: [] }); $("#c-set").focus(); return; }
      await update();
      const name = $("#c-name").value.trim() || defaultName;
      const btn = form.querySelector("button[type=submit]");
      btn.disabled = true;
      btn.textContent = "Launching…";
      try {
        const body = { name, template: tsel.value };
        if ($("#c-ref").value.trim()) body.ref = $("#c-ref").value.trim();
        if (Object.keys(set).length) body.set = set;
        await api("POST", "/api/v1/sandboxes", body);
        location.assign("/sandboxes/" + encodeURIComponent(name));
      } catch (err) {
        if (err.status === 409) {
          // The name is taken: most often by this very link's sandbox.
          showError({ message: err.message, hint: "open it below, or choose another name", details: [] });
          await update();
        } else showError(err);
      } finally {
        btn.disabled = false;
        btn.textContent = "Launch";
      }
    });
  }

  // ---- templates -------------------------------------------------------

  function sourceList(box, source, notes) {
    const byLine = {};
    for (const n of notes || []) (byLine[n.line] = byLine[n.line] || []).push(n.text);
    box.replaceChildren(...source.split("\n").map((line, i) => {
      const ns = byLine[i + 1];
      return el("li", ns ? { class: "bad", id: "line-" + (i + 1) } : {}, line || " ", ...(ns || []).map((t) => el("span", { class: "note", role: "note" }, "↑ " + t)));
    }));
  }

  // applyForm validates and applies a template, showing each error under
  // the line it is about.
  function applyForm(onApplied) {
    const form = $("#apply-form");
    const result = $("#apply-result");
    const annotated = $("#annotated");
    async function send(dry) {
      result.replaceChildren();
      annotated.hidden = true;
      const body = { filename: $("#a-filename").value || "sandpit.yaml", source: $("#a-source").value, dry_run: dry };
      if ($("#a-basedir").value) body.base_dir = $("#a-basedir").value;
      try {
        const r = await api("POST", "/api/v1/templates", body);
        const t = r.template;
        result.replaceChildren(el("p", { class: "callout" }, dry ? "Valid: template " + t.name + (r.created ? " would become version " + t.version : " is unchanged (version " + t.version + ")") + "."
          : r.created ? "Applied: " + t.name + " version " + t.version + "." : "Unchanged: " + t.name + " is already version " + t.version + "."),
        ...(r.warnings || []).map((w) => el("p", { class: "muted" }, "Warning: " + w)));
        if (!dry && onApplied) onApplied(t);
      } catch (e) {
        const notes = [];
        const unplaced = [];
        for (const d of e.details || []) {
          const m = /:(\d+)(?::(\d+))?$/.exec(d.pos || "");
          if (m) notes.push({ line: +m[1], text: (m[2] ? "col " + m[2] + ": " : "") + (d.path ? d.path + ": " : "") + d.message });
          else unplaced.push((d.path ? d.path + ": " : "") + d.message);
        }
        result.replaceChildren(el("p", { class: "error", role: "alert" }, errorText(e) + (notes.length ? " (" + notes.length + " shown in the source below)" : "")),
          ...(unplaced.length ? [el("ul", { class: "error" }, ...unplaced.map((u) => el("li", {}, u)))] : []));
        if (notes.length) {
          sourceList(annotated, $("#a-source").value, notes);
          annotated.hidden = false;
          const first = $("li.bad", annotated);
          if (first) first.scrollIntoView({ block: "nearest" });
        }
      }
    }
    $("#validate").addEventListener("click", () => send(true));
    form.addEventListener("submit", (e) => { e.preventDefault(); send(false); });
  }

  async function templatesPage() {
    applyForm(() => load());
    async function load() {
      try {
        const list = ((await api("GET", "/api/v1/templates")) || {}).items || [];
        $("#templates tbody").replaceChildren(...list.map((t) => el("tr", {},
          el("td", { "data-label": "Name" }, el("a", { href: "/templates/" + encodeURIComponent(t.name) }, t.name)),
          el("td", { "data-label": "Version" }, String(t.version)),
          el("td", { "data-label": "Description" }, t.description || ""),
          el("td", { "data-label": "Services" }, (t.services || []).join(", ")),
          el("td", { "data-label": "Dependencies" }, (t.dependencies || []).join(", ")),
          el("td", { "data-label": "Applied" }, t.created_at ? timeEl(t.created_at, fmtTime(t.created_at)) : ""))));
        $("#empty").hidden = list.length > 0;
      } catch (e) { toast(errorText(e), true); }
    }
    load();
  }

  async function templatePage() {
    const name = pageName;
    const vsel = $("#t-version");
    async function show(version) {
      try {
        const t = await api("GET", "/api/v1/templates/" + encodeURIComponent(name) + (version ? "?version=" + version : ""));
        const dl = $("#t-facts");
        dl.replaceChildren();
        const add = (k, v) => { if (v) dl.append(el("dt", {}, k), el("dd", {}, v)); };
        add("Description", t.description);
        add("Version", String(t.version));
        add("File", t.filename);
        add("Services", (t.services || []).join(", "));
        add("Dependencies", (t.dependencies || []).join(", "));
        add("Endpoints", (t.endpoints || []).join(", "));
        add("Applied", t.created_at ? fmtTime(t.created_at) + (t.created_by ? " by " + t.created_by : "") : "");
        sourceList($("#t-source"), t.source || "", []);
        if (!version) {
          $("#a-source").value = t.source || "";
          $("#a-filename").value = t.filename || "sandpit.yaml";
          $("#a-basedir").value = t.base_dir || "";
        }
        return t;
      } catch (e) {
        $("#t-source").replaceChildren(el("li", { class: "bad" }, errorText(e)));
        return null;
      }
    }
    async function versions() {
      try {
        const list = ((await api("GET", "/api/v1/templates/" + encodeURIComponent(name) + "/versions")) || {}).items || [];
        vsel.replaceChildren(...list.slice().reverse().map((t) => el("option", { value: t.version }, "v" + t.version + (t.created_at ? " — " + fmtTime(t.created_at) : ""))));
      } catch (_) { /* shown by show() */ }
    }
    vsel.addEventListener("change", () => show(vsel.value));
    applyForm(async (t) => { await versions(); vsel.value = t.version; show(t.version); });
    await versions();
    show(0);
  }

  // ---- snapshots -------------------------------------------------------

  async function snapshotsPage() {
    try {
      const list = (await api("GET", "/api/v1/snapshots")) || {};
      const items = list.items || [];
      if (list.method) $("#method").textContent = "Stored by " + list.method + (list.method_reason ? " (" + list.method_reason + ")" : "") + ".";
      $("#snapshots tbody").replaceChildren(...items.map((s) => el("tr", {},
        el("td", { "data-label": "Name" }, s.name),
        el("td", { "data-label": "Type" }, s.type + " " + s.version),
        el("td", { "data-label": "Phase" }, el("span", { class: "phase " + (s.phase === "Ready" ? "Ready" : s.phase === "Failed" ? "Failed" : "Provisioning") }, s.phase), s.message ? " " + s.message : ""),
        el("td", { "data-label": "Size" }, fmtBytes(s.size_bytes)),
        el("td", { "data-label": "Source" }, s.source ? (s.source.sandbox ? s.source.sandbox + (s.source.dependency ? "/" + s.source.dependency : "") : s.source.filename || s.source.kind) : ""),
        el("td", { "data-label": "Used by" }, ...(s.used_by || []).flatMap((n, i) => [i ? ", " : "", el("a", { href: "/sandboxes/" + encodeURIComponent(n) }, n)])),
        el("td", { "data-label": "Created" }, timeEl(s.created_at, fmtTime(s.created_at))))));
      $("#empty").hidden = items.length > 0;
    } catch (e) { toast(errorText(e), true); }
  }

  // ---- usage -----------------------------------------------------------

  const palette = ["#1d4e89", "#2f7d45", "#b8600b", "#7a3e9d", "#a4161a", "#00707a", "#6b6b00", "#8a3b5c"];

  async function usagePage() {
    let data = null;
    async function load() {
      try {
        data = await api("GET", "/api/v1/usage?days=" + $("#u-days").value);
        draw();
      } catch (e) { $("#saved").textContent = errorText(e); }
    }
    function draw() {
      const by = $("#u-by").value === "owner" ? "by_owner" : "by_template";
      const days = data.days || [];
      const keys = [...new Set(days.flatMap((d) => Object.keys(d[by] || {})))].sort();
      const t = data.totals || {};
      const saved = t.idle_saved_hours || 0;
      const ran = t.running_hours || 0;
      $("#saved").textContent = "Idle suspend saved " + saved.toFixed(1) + " sandbox-hours" +
        (ran + saved > 0 ? " (" + Math.round((100 * saved) / (ran + saved)) + "% of what would have run)" : "") +
        "; sandboxes ran " + ran.toFixed(1) + " hours in these " + days.length + " days.";
      // Stacked bars: one per day, a segment per template or owner.
      const W = Math.max(300, $("#chart").clientWidth || 760), H = 260, left = 40, bottom = 40, top = 10;
      const max = Math.max(1, ...days.map((d) => Object.values(d[by] || {}).reduce((a, b) => a + b, 0)));
      const bw = (W - left - 10) / Math.max(1, days.length);
      const ns = "http://www.w3.org/2000/svg";
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("viewBox", "0 0 " + W + " " + H);
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-labelledby", "chart-caption");
      const mk = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text) e.textContent = text; return e; };
      for (let i = 0; i <= 4; i++) {
        const v = (max * i) / 4, y = H - bottom - ((H - bottom - top) * i) / 4;
        svg.append(mk("line", { x1: left, x2: W, y1: y, y2: y, stroke: "#d0d7de" }), mk("text", { x: 0, y: y + 4 }, v.toFixed(v < 10 ? 1 : 0)));
      }
      days.forEach((d, i) => {
        let y = H - bottom;
        keys.forEach((k, j) => {
          const v = (d[by] || {})[k] || 0;
          if (!v) return;
          const h = ((H - bottom - top) * v) / max;
          y -= h;
          const r = mk("rect", { x: left + i * bw + 2, y, width: Math.max(1, bw - 4), height: h, fill: palette[j % palette.length] });
          r.append(mk("title", {}, d.date + " · " + k + ": " + v.toFixed(2) + " h"));
          svg.append(r);
        });
        // Date labels need about 40 px each; skip some when bars are narrow.
        const every = Math.max(1, Math.ceil(40 / bw));
        if (i % every === 0) svg.append(mk("text", { x: left + i * bw + 2, y: H - bottom + 14 }, d.date.slice(5)));
      });
      const legend = el("ul", { class: "legend" }, ...keys.map((k, j) => {
        const sw = el("span", { class: "swatch" });
        sw.style.background = palette[j % palette.length];
        return el("li", {}, sw, k);
      }));
      $("#chart").replaceChildren(svg, legend);
      $("#chart-caption").textContent = "Sandbox-hours per day by " + (by === "by_owner" ? "owner" : "template");
      // The same figures as a table, for screen readers and copying.
      $("#usage thead").replaceChildren(el("tr", {}, el("th", { scope: "col" }, "Day"), ...keys.map((k) => el("th", { scope: "col" }, k)), el("th", { scope: "col" }, "Total"), el("th", { scope: "col" }, "Idle suspend saved")));
      $("#usage tbody").replaceChildren(...days.map((d) => el("tr", {},
        el("th", { scope: "row", "data-label": "Day" }, d.date),
        ...keys.map((k) => el("td", { "data-label": k }, ((d[by] || {})[k] || 0).toFixed(2))),
        el("td", { "data-label": "Total" }, (d.running_hours || 0).toFixed(2)),
        el("td", { "data-label": "Idle suspend saved" }, (d.idle_saved_hours || 0).toFixed(2)))));
    }
    $("#u-days").addEventListener("change", load);
    $("#u-by").addEventListener("change", () => data && draw());
    window.addEventListener("resize", () => data && draw());
    $("#usage-form").addEventListener("submit", (e) => e.preventDefault());
    load();
  }

  const pages = { sandboxes: sandboxesPage, sandbox: sandboxPage, new: newPage, templates: templatesPage, template: templatePage, snapshots: snapshotsPage, usage: usagePage };
  if (pages[page]) pages[page]();
})();
