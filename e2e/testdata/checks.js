// Checks a console page the way a careful reviewer would: every control
// and button named, AA contrast, every interactive element reachable by Tab
// with a visible focus indicator, and nothing wider than a phone's screen.
// Each check returns human-readable findings naming the element.
var sandpitChecks = window.sandpitChecks || (function () {
  function describe(e) {
    let s = e.tagName.toLowerCase();
    if (e.id) s += "#" + e.id;
    else if (e.className && typeof e.className === "string") s += "." + e.className.trim().split(/\s+/).join(".");
    const text = (e.innerText || e.value || e.getAttribute("aria-label") || "").trim().replace(/\s+/g, " ").slice(0, 40);
    return text ? s + ' "' + text + '"' : s;
  }
  function visible(e) {
    if (!e.getClientRects().length) return false;
    const st = getComputedStyle(e);
    if (st.visibility === "hidden") return false;
    const r = e.getBoundingClientRect();
    return r.width > 1 && r.height > 1;
  }
  function accessibleName(e) {
    if (e.getAttribute("aria-label")) return e.getAttribute("aria-label").trim();
    const lb = e.getAttribute("aria-labelledby");
    if (lb) return lb.split(/\s+/).map((id) => (document.getElementById(id) || {}).textContent || "").join(" ").trim();
    if (e.labels && e.labels.length) return [...e.labels].map((l) => l.textContent).join(" ").trim();
    if (e.title) return e.title.trim();
    if (e.tagName === "INPUT" && ["submit", "button", "reset"].includes(e.type)) return e.value;
    const imgs = [...e.querySelectorAll("img[alt]")].map((i) => i.alt).join(" ");
    return ((e.textContent || "") + " " + imgs).trim();
  }
  function parse(c) {
    const m = /^rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)$/.exec(c);
    return m ? [+m[1], +m[2], +m[3], m[4] === undefined ? 1 : +m[4]] : null;
  }
  function over(top, bottom) {
    const a = top[3];
    return [0, 1, 2].map((i) => top[i] * a + bottom[i] * (1 - a)).concat([1]);
  }
  function lum(c) {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
  }
  // background composites the ancestors' background colours; null when
  // an image or gradient makes it unknowable.
  function background(e) {
    const layers = [];
    for (let n = e; n && n.nodeType === 1; n = n.parentElement) {
      const st = getComputedStyle(n);
      if (st.backgroundImage !== "none") return null;
      const c = parse(st.backgroundColor);
      if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
    }
    let bg = [255, 255, 255, 1];
    for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
    return bg;
  }
  function ratio(a, b) {
    const l1 = lum(a), l2 = lum(b);
    return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
  }
  function focusables() {
    return [...document.querySelectorAll('a[href], button, input, select, textarea, summary, [tabindex]')].filter((e) =>
      !e.disabled && e.tabIndex >= 0 && !(e.type === "hidden") && visible(e) && !e.closest("[hidden], dialog:not([open])"));
  }
  function indicator(e) {
    const st = getComputedStyle(e);
    return { outline: st.outlineStyle !== "none" && parseFloat(st.outlineWidth) > 0, shadow: st.boxShadow, border: st.borderColor, bg: st.backgroundColor };
  }

  const state = { want: [], seen: new Set(), unfocused: new Map(), noRing: [], first: null, steps: 0 };
  return {
    static() {
      const out = [];
      if (!document.documentElement.lang) out.push("the document has no lang");
      if (!document.title.trim()) out.push("the document has no title");
      for (const e of document.querySelectorAll("input, select, textarea")) {
        if (["hidden", "submit", "button", "reset"].includes(e.type) || !visible(e)) continue;
        if (!accessibleName(e)) out.push("no label: " + describe(e));
      }
      for (const e of document.querySelectorAll("button, a[href], [role=button]")) {
        if (visible(e) && !accessibleName(e)) out.push("no accessible name: " + describe(e));
      }
      for (const e of document.querySelectorAll("img")) if (!e.hasAttribute("alt")) out.push("image without alt: " + describe(e));
      for (const e of document.querySelectorAll("body *")) {
        if (!visible(e) || ["SCRIPT", "STYLE", "svg", "SVG"].includes(e.tagName) || e.closest("svg")) continue;
        const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!own) continue;
        const st = getComputedStyle(e);
        const fg = parse(st.color), bg = background(e);
        if (!fg || !bg) continue;
        const r = ratio(over(fg, bg), bg);
        const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight, 10) >= 700;
        const need = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
        if (r < need) out.push("contrast " + r.toFixed(2) + ":1 (needs " + need + "): " + describe(e));
      }
      return out;
    },
    focusStart() {
      if (document.activeElement) document.activeElement.blur();
      state.want = focusables();
      state.seen = new Set();
      state.noRing = [];
      state.first = null;
      state.steps = 0;
      state.unfocused = new Map(state.want.map((e) => [e, indicator(e)]));
      window.scrollTo(0, 0);
      return state.want.length;
    },
    focusStep() {
      const e = document.activeElement;
      state.steps++;
      // Focus leaves the page once per cycle (to the browser's own UI).
      if (!e || e === document.body) return false;
      if (e === state.first) return true;
      if (state.first === null) state.first = e;
      if (!state.seen.has(e)) {
        state.seen.add(e);
        const now = indicator(e), before = state.unfocused.get(e);
        const shown = now.outline || (before && (now.shadow !== before.shadow || now.border !== before.border || now.bg !== before.bg));
        if (!shown) state.noRing.push("no visible focus indicator: " + describe(e));
      }
      return false;
    },
    focusReport() {
      const out = state.noRing.slice();
      for (const e of state.want) if (!state.seen.has(e)) out.push("not reachable with Tab: " + describe(e));
      if (document.activeElement) document.activeElement.blur();
      return out;
    },
    mobile() {
      const out = [];
      const root = document.documentElement;
      const vp = document.querySelector('meta[name="viewport"]');
      if (!vp || !/width=device-width/.test(vp.content)) out.push("no <meta name=viewport content=width=device-width>: phones show the desktop layout shrunk");
      if (root.scrollWidth > root.clientWidth + 1) {
        const wide = [...document.querySelectorAll("body *")].filter((e) => visible(e) && e.getBoundingClientRect().right > root.clientWidth + 1 && !e.closest(".table-wrap, .logs, .source, .sr-only, .skip"))
          .slice(0, 5).map(describe);
        out.push("the page is " + root.scrollWidth + " px wide on a " + root.clientWidth + " px screen: " + wide.join(", "));
      }
      for (const e of document.querySelectorAll("body *")) {
        if (!visible(e) || e.closest("svg")) continue;
        const own = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
        if (own && parseFloat(getComputedStyle(e).fontSize) < 12) out.push("text smaller than 12 px: " + describe(e));
      }
      return out;
    },
  };
})();
window.sandpitChecks = sandpitChecks;
