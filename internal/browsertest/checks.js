// The checks of package browsertest, evaluated in the page under test.
//
// This file is one JavaScript expression: an object whose methods the Go
// side calls as `(<this file>).name()`. Each check returns an array of
// human-readable violations (strings), each naming the element by a short
// CSS-like path and its text. Only the keyboard-focus check keeps state
// between calls, in window.__sandpitFocus, because the Go side presses Tab
// between them.
({
  // describe names an element for a person: a CSS-like path of at most
  // three steps (stopping at an id) and the start of its text.
  describe(el) {
    const steps = [];
    for (let e = el; e && e.nodeType === 1 && steps.length < 3; e = e.parentElement) {
      const tag = e.tagName.toLowerCase();
      if (tag === "html" || (tag === "body" && steps.length > 0)) break;
      let s = tag;
      if (e.id) {
        steps.unshift(s + "#" + CSS.escape(e.id));
        break;
      }
      const classes = Array.from(e.classList).filter((c) => !c.startsWith("__sandpit")).slice(0, 2);
      for (const c of classes) s += "." + CSS.escape(c);
      if (e === el) {
        for (const a of ["type", "name", "role", "href", "for"]) {
          const v = e.getAttribute(a);
          if (v !== null && v.length <= 40) s += "[" + a + '="' + v + '"]';
        }
      }
      steps.unshift(s);
    }
    let text = "";
    if (el.matches('input[type="checkbox"], input[type="radio"], input[type="range"], input[type="color"], input[type="file"], input[type="password"]')) {
      text = "";
    } else if (el.matches("input, textarea, select")) {
      text = el.value || el.getAttribute("placeholder") || "";
    } else {
      text = el.innerText || el.textContent || el.getAttribute("aria-label") || el.getAttribute("alt") || "";
    }
    text = text.replace(/\s+/g, " ").trim();
    if (text.length > 40) text = text.slice(0, 37) + "...";
    return steps.join(" > ") + (text ? ' "' + text + '"' : "");
  },

  // visible: rendered, with a size, not visibility:hidden, not opacity 0.
  visible(el) {
    if (!el.isConnected) return false;
    if (el.checkVisibility && !el.checkVisibility({ opacityProperty: true, visibilityProperty: true, checkOpacity: true, checkVisibilityCSS: true })) {
      return false;
    }
    const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  },

  // textName is the text an element contributes to an accessible name:
  // its rendered text, image alternatives and SVG titles, without hidden
  // parts or the contents of nested form fields.
  textName(node) {
    let out = "";
    for (const c of node.childNodes) {
      if (c.nodeType === 3) {
        out += c.data;
        continue;
      }
      if (c.nodeType !== 1) continue;
      if (c.getAttribute("aria-hidden") === "true") continue;
      const style = getComputedStyle(c);
      if (style.display === "none" || style.visibility === "hidden") continue;
      const tag = c.tagName.toLowerCase();
      if (c.hasAttribute("aria-label")) {
        out += " " + c.getAttribute("aria-label") + " ";
      } else if (tag === "img" || (tag === "input" && c.type === "image")) {
        out += " " + (c.getAttribute("alt") || "") + " ";
      } else if (tag === "svg") {
        const title = c.querySelector("title");
        out += " " + (title ? title.textContent : "") + " ";
      } else if (tag === "input" || tag === "select" || tag === "textarea" || tag === "script" || tag === "style") {
        // Not part of a label's text.
      } else {
        out += " " + this.textName(c) + " ";
      }
    }
    return out.replace(/\s+/g, " ").trim();
  },

  // accessibleName follows the order of the accessible name computation,
  // simplified: aria-labelledby, aria-label, then what the element is.
  accessibleName(el) {
    const ids = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean);
    if (ids.length) {
      const text = ids
        .map((id) => document.getElementById(id))
        .filter(Boolean)
        .map((e) => e.getAttribute("aria-label") || this.textName(e))
        .join(" ")
        .trim();
      if (text) return text;
    }
    const label = (el.getAttribute("aria-label") || "").trim();
    if (label) return label;
    const tag = el.tagName.toLowerCase();
    if (tag === "input" || tag === "select" || tag === "textarea") {
      const type = (el.getAttribute("type") || "").toLowerCase();
      if (tag === "input" && (type === "submit" || type === "reset")) return el.value || type;
      if (tag === "input" && type === "button" && el.value.trim()) return el.value.trim();
      if (tag === "input" && type === "image" && (el.getAttribute("alt") || "").trim()) return el.getAttribute("alt").trim();
      for (const l of el.labels || []) {
        const text = this.textName(l);
        if (text) return text;
      }
    } else {
      const text = this.textName(el);
      if (text) return text;
    }
    return (el.getAttribute("title") || "").trim();
  },

  labels() {
    const v = [];
    const lang = document.documentElement.getAttribute("lang");
    if (!lang || !lang.trim()) v.push('document: <html> has no lang attribute (add lang="en", or the page\'s language)');
    if (!document.title.trim()) v.push("document: no <title>, or an empty one (name the page)");
    const notFields = new Set(["hidden", "submit", "reset", "button", "image"]);
    for (const el of document.querySelectorAll("input, select, textarea")) {
      if (el.tagName === "INPUT" && notFields.has(el.type)) continue;
      if (!this.visible(el)) continue;
      if (!this.accessibleName(el)) {
        const hint = el.getAttribute("placeholder") ? " (a placeholder is not a label)" : "";
        v.push("form field without a label: " + this.describe(el) + hint + ": add <label for>, a wrapping <label>, aria-label or aria-labelledby");
      }
    }
    const buttons = 'button, [role="button"], input[type="submit"], input[type="reset"], input[type="button"], input[type="image"], summary';
    for (const el of document.querySelectorAll(buttons + ', a[href], [role="link"]')) {
      if (!this.visible(el)) continue;
      if (!this.accessibleName(el)) {
        const kind = el.matches(buttons) ? "button" : "link";
        v.push(kind + " without an accessible name: " + this.describe(el) + ": give it text, aria-label, or an <img> with alt");
      }
    }
    for (const el of document.querySelectorAll("img")) {
      if (!this.visible(el)) continue;
      const role = el.getAttribute("role");
      if (role === "presentation" || role === "none" || el.getAttribute("aria-hidden") === "true") continue;
      if (!el.hasAttribute("alt")) {
        const src = (el.getAttribute("src") || "").slice(0, 60);
        v.push("image without alt: " + this.describe(el) + ' src="' + src + '": add alt text, or alt="" if it is decoration');
      }
    }
    return v;
  },

  // --- keyboard focus ---------------------------------------------------

  focusStyle(el) {
    const pick = (s) => [
      s.outlineStyle, s.outlineWidth, s.outlineColor, s.outlineOffset, s.boxShadow,
      s.borderTopColor, s.borderRightColor, s.borderBottomColor, s.borderLeftColor,
      s.borderTopWidth, s.borderRightWidth, s.borderBottomWidth, s.borderLeftWidth,
      s.borderTopStyle, s.borderBottomStyle, s.backgroundColor, s.backgroundImage,
      s.color, s.textDecorationLine, s.textDecorationColor, s.opacity, s.transform,
      s.top, s.left, s.clipPath, s.width, s.height,
    ];
    const s = getComputedStyle(el);
    return {
      outline: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0 && this.color(s.outlineColor).a > 0,
      own: pick(s),
      before: [getComputedStyle(el, "::before").content].concat(pick(getComputedStyle(el, "::before"))),
      after: [getComputedStyle(el, "::after").content].concat(pick(getComputedStyle(el, "::after"))),
    };
  },

  // focusIndicator tells whether focus changed how el looks.
  focusIndicator(unfocused, focused) {
    const differs = (a, b) => a.some((x, i) => x !== b[i]);
    if (focused.outline && differs(unfocused.own.slice(0, 4), focused.own.slice(0, 4))) return true;
    if (differs(unfocused.own.slice(4), focused.own.slice(4))) return true;
    return differs(unfocused.before, focused.before) || differs(unfocused.after, focused.after);
  },

  // focusStart lists the elements a keyboard user must reach, notes how
  // each looks without focus, and takes focus away from the page's
  // elements. It returns how many there are.
  focusStart() {
    const sel = 'a[href], area[href], button, input, select, textarea, summary, iframe, [tabindex], [contenteditable=""], [contenteditable="true"]';
    const els = [];
    const modal = document.querySelector("dialog:modal"); // the rest of the page is inert
    for (const el of document.querySelectorAll(sel)) {
      if (el.matches('input[type="hidden"], :disabled') || el.closest("[inert]")) continue;
      if (modal && !modal.contains(el)) continue;
      const ti = el.getAttribute("tabindex");
      const native = el.matches('a[href], area[href], button, input, select, textarea, summary, iframe, [contenteditable=""], [contenteditable="true"]');
      if (!native && !(ti !== null && parseInt(ti, 10) >= 0)) continue;
      if (el.tagName === "SUMMARY" && el.parentElement.tagName !== "DETAILS") continue;
      if (!this.visible(el)) continue;
      els.push(el);
    }
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
    window.__sandpitFocus = {
      els,
      unfocused: els.map((el) => this.focusStyle(el)),
      focused: els.map(() => null),
      seq: [],
      first: null,
    };
    return els.length;
  },

  // focusStep runs after each Tab: it records which element has focus and
  // how it looks now. done is true when every element was reached or the
  // focus came back to where it started.
  focusStep() {
    const st = window.__sandpitFocus;
    if (!st) return { done: true };
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    const i = st.els.indexOf(el);
    if (i >= 0 && !st.focused[i]) {
      for (const a of el.getAnimations ? el.getAnimations() : []) {
        try {
          a.finish();
        } catch (e) {
          // Infinite animations cannot finish; keep their current frame.
        }
      }
      st.focused[i] = this.focusStyle(el);
    }
    const cur = el && el !== document.body ? el : null;
    st.seq.push(cur);
    if (cur && !st.first) st.first = cur;
    const all = st.focused.every(Boolean);
    const moved = st.seq.some((e) => e && e !== st.first);
    const back = moved && cur === st.first && st.seq.length > 1;
    return { done: all || back };
  },

  focusReport() {
    const st = window.__sandpitFocus;
    delete window.__sandpitFocus;
    if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
    if (!st) return ["focus check: lost its state (did the page navigate?)"];
    const v = [];
    // Tab reaches one radio button of a group; arrow keys move within it.
    const group = (el) => (el.type === "radio" && el.name ? (el.form ? "f" : "d") + ":" + el.name : null);
    const reachedGroups = new Set(st.els.filter((el, i) => st.focused[i] && group(el)).map(group));
    st.els.forEach((el, i) => {
      const ti = el.getAttribute("tabindex");
      if (!st.focused[i] && group(el) && reachedGroups.has(group(el))) return;
      if (!st.focused[i]) {
        const why = ti !== null && parseInt(ti, 10) < 0 ? " (it has tabindex=" + ti + ")" : "";
        v.push("not reachable with Tab: " + this.describe(el) + why);
      } else if (el.tagName !== "IFRAME" && !this.focusIndicator(st.unfocused[i], st.focused[i])) {
        v.push("no visible focus indicator: " + this.describe(el) + " looks the same focused (outline none, and no box-shadow, border, background or color change on :focus)");
      }
    });
    return v;
  },

  // --- colour contrast --------------------------------------------------

  // color parses a CSS colour to sRGB bytes and alpha; rgb()/rgba() are
  // read exactly, anything else (color(), oklch()...) through a canvas.
  color(str) {
    const m = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)$/.exec(str);
    if (m) {
      let a = m[4] === undefined ? 1 : parseFloat(m[4]);
      if (m[4] && m[4].endsWith("%")) a /= 100;
      return { r: +m[1], g: +m[2], b: +m[3], a };
    }
    if (str === "transparent") return { r: 0, g: 0, b: 0, a: 0 };
    if (!this._cx) {
      const cv = document.createElement("canvas");
      cv.width = cv.height = 1;
      this._cx = cv.getContext("2d", { willReadFrequently: true });
    }
    const cx = this._cx;
    cx.clearRect(0, 0, 1, 1);
    cx.fillStyle = "rgba(0,0,0,0)";
    cx.fillStyle = str;
    cx.fillRect(0, 0, 1, 1);
    const d = cx.getImageData(0, 0, 1, 1).data;
    return { r: d[0], g: d[1], b: d[2], a: d[3] / 255 };
  },

  // over composites colour c (with alpha) over an opaque colour bg.
  over(c, bg) {
    const a = c.a;
    return { r: c.r * a + bg.r * (1 - a), g: c.g * a + bg.g * (1 - a), b: c.b * a + bg.b * (1 - a), a: 1 };
  },

  luminance(c) {
    const ch = (v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    };
    return 0.2126 * ch(c.r) + 0.7152 * ch(c.g) + 0.0722 * ch(c.b);
  },

  hex(c) {
    return "#" + [c.r, c.g, c.b].map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
  },

  // background is the opaque colour behind el's text: the background
  // colours of el and its ancestors composited, over white. null when an
  // image or gradient is in the way: the colour behind is then unknown.
  background(el) {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const s = getComputedStyle(e);
      if (s.backgroundImage && s.backgroundImage !== "none") return null;
      const c = this.color(s.backgroundColor);
      if (c.a > 0) {
        layers.push(c);
        if (c.a >= 1) break;
      }
    }
    let bg = { r: 255, g: 255, b: 255, a: 1 };
    for (let i = layers.length - 1; i >= 0; i--) bg = this.over(layers[i], bg);
    return bg;
  },

  // textElements yields each element that directly holds visible text, once.
  *textElements() {
    if (!document.body) return;
    const seen = new Set();
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (!n.data.trim()) continue;
      const el = n.parentElement;
      if (!el || seen.has(el)) continue;
      if (el.closest("script, style, noscript, template, option, optgroup, datalist, title")) continue;
      range.selectNodeContents(n);
      const r = range.getBoundingClientRect();
      if (r.width < 2 || r.height < 2) continue;
      if (!this.visible(el)) continue;
      seen.add(el);
      yield el;
    }
  },

  contrast() {
    const v = [];
    for (const el of this.textElements()) {
      if (el.closest(":disabled")) continue; // inactive controls are exempt
      const bg = this.background(el);
      if (!bg) continue;
      const s = getComputedStyle(el);
      const fg = this.over(this.color(s.color), bg);
      const l1 = this.luminance(fg);
      const l2 = this.luminance(bg);
      const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
      const size = parseFloat(s.fontSize);
      const bold = parseInt(s.fontWeight, 10) >= 700;
      const large = size >= 24 || (bold && size >= 18.66);
      const need = large ? 3 : 4.5;
      if (ratio < need) {
        const shown = Math.floor(ratio * 100) / 100;
        v.push("low contrast " + shown + ":1 (needs " + need + ":1 for " + (large ? "large" : "normal") + " text, " + size + "px" + (bold ? " bold" : "") + "): " + this.describe(el) + ": " + this.hex(fg) + " on " + this.hex(bg));
      }
    }
    return v;
  },

  // --- small screens ----------------------------------------------------

  mobile() {
    const v = [];
    const de = document.documentElement;
    const vw = de.clientWidth;
    if (vw > 392) {
      v.push("the page is laid out " + vw + ' px wide on a 390 px screen and shown zoomed out: add <meta name="viewport" content="width=device-width, initial-scale=1">');
    }
    const sw = de.scrollWidth;
    if (sw > vw + 1) {
      const offenders = new Set();
      const found = [];
      const clips = (e) => {
        for (let a = e.parentElement; a && a !== document.body && a !== de; a = a.parentElement) {
          const ox = getComputedStyle(a).overflowX;
          if (ox !== "visible") return true;
        }
        return false;
      };
      for (const el of document.querySelectorAll("body *")) {
        if (!this.visible(el)) continue;
        const r = el.getBoundingClientRect();
        const right = r.right + window.scrollX;
        if (right <= vw + 1) continue;
        if (getComputedStyle(el).position === "fixed" || clips(el)) continue;
        offenders.add(el);
        let outer = true;
        for (let a = el.parentElement; a; a = a.parentElement) {
          if (offenders.has(a)) {
            outer = false;
            break;
          }
        }
        if (outer) found.push({ el, right, width: r.width });
      }
      found.sort((a, b) => b.right - a.right);
      for (const f of found.slice(0, 5)) {
        v.push("wider than the " + vw + " px screen: " + this.describe(f.el) + " is " + Math.round(f.width) + " px wide and reaches " + Math.round(f.right) + " px, so the page scrolls sideways");
      }
      if (found.length > 5) v.push("... and " + (found.length - 5) + " more elements wider than the screen");
      if (!found.length) v.push("the page scrolls sideways (" + sw + " px of content on a " + vw + " px screen), but no element could be blamed");
    }
    const small = [];
    for (const el of this.textElements()) {
      const size = parseFloat(getComputedStyle(el).fontSize);
      if (size < 12) small.push("text smaller than 12 px (" + size + "px): " + this.describe(el));
    }
    v.push(...small.slice(0, 10));
    if (small.length > 10) v.push("... and " + (small.length - 10) + " more texts smaller than 12 px");
    return v;
  },
})
