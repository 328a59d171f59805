"""The HTML, style and script of the film page (``escope export --html``).

One constant, filled in by ``film.render_html``: ``{{TITLE}}`` (escaped
text) and ``{{DATA}}`` (JSON with ``<``, ``>`` and ``&`` escaped).  The
script is plain ES2017 with no library, so the page works offline and from
``file://``.  Every recorded text reaches the DOM through ``textContent``;
``innerHTML`` is never used.  ``film.py`` documents the data layout.

Keys: Right/Left one step, Shift+Right/Left next/previous step in this
frame or a caller (pdb's ``n``/``rn``), PageDown/PageUp 100 steps,
Home/End, ``f`` the failure.  ``#step=N`` in the URL opens step N and the
page keeps it up to date, so a link names a moment of the film.
"""

PAGE = r"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>{{TITLE}}</title>
<style>
:root { --bg:#fafaf7; --fg:#1d1d1b; --dim:#6b6b66; --line:#e4e3dc; --hi:#fff2a8; --fail:#c0392b; --acc:#2c6db5; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color:var(--fg); background:var(--bg); }
header { padding:10px 16px; border-bottom:1px solid var(--line); }
header h1 { font-size:16px; margin:0; font-family:ui-monospace, Menlo, Consolas, monospace; word-break:break-all; }
#failure-msg { color:var(--fail); font-family:ui-monospace, Menlo, Consolas, monospace; margin-top:4px; white-space:pre-wrap; }
#window-note { color:var(--dim); font-size:12px; margin-top:4px; }
#controls { position:sticky; top:0; z-index:2; background:var(--bg); padding:8px 16px; border-bottom:1px solid var(--line); }
#buttons { display:flex; gap:6px; align-items:center; flex-wrap:wrap; }
button { font:inherit; padding:2px 10px; border:1px solid #bbb; background:#fff; border-radius:4px; cursor:pointer; }
button:hover { border-color:var(--acc); }
#pos { font-family:ui-monospace, Menlo, Consolas, monospace; margin-left:8px; }
#kind { display:inline-block; min-width:70px; padding:0 6px; border-radius:3px; background:#eee; text-align:center; }
#kind.exception, #kind.unwind { background:#f6d5d1; color:var(--fail); }
#kind.call { background:#dbe8f7; } #kind.return { background:#e1f3dc; }
#where { color:var(--dim); font-family:ui-monospace, Menlo, Consolas, monospace; margin-left:8px; }
#strip { position:relative; margin-top:6px; height:38px; }
#depth { position:absolute; left:0; top:0; width:100%; height:18px; }
#scrubber { position:absolute; left:0; top:20px; width:100%; margin:0; }
#fail-marker { position:absolute; top:0; width:2px; height:18px; background:var(--fail); pointer-events:none; }
#fail-marker::after { content:"failure"; position:absolute; left:3px; top:-2px; font-size:10px; color:var(--fail); }
#help { color:var(--dim); font-size:12px; margin-top:2px; }
main { display:grid; grid-template-columns:minmax(0,3fr) minmax(280px,2fr); gap:0; height:calc(100vh - 170px); min-height:300px; }
#source-pane { overflow:auto; border-right:1px solid var(--line); }
#file-name { position:sticky; top:0; background:#f0efe8; padding:3px 10px; font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; border-bottom:1px solid var(--line); }
ol.src { margin:0; padding:0 0 0 4.5em; font:13px/1.45 ui-monospace, Menlo, Consolas, monospace; }
ol.src li { white-space:pre; padding-left:8px; color:#333; }
ol.src li::marker { color:#aaa; font-size:11px; }
ol.src li.cur { background:var(--hi); outline:1px solid #e5c900; }
ol.src li.cur.exc { background:#f9d3cd; outline-color:var(--fail); }
ol.src li.outer { background:#eef3fa; }
#side { overflow:auto; padding:8px 12px; }
h2 { font-size:12px; text-transform:uppercase; letter-spacing:.06em; color:var(--dim); margin:12px 0 4px; }
#stack { margin:0; padding-left:20px; font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; }
#stack li { cursor:pointer; padding:1px 2px; }
#stack li.sel { background:#e7eefa; }
#stack .loc { color:var(--dim); }
table { border-collapse:collapse; width:100%; font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; }
td { border-bottom:1px solid var(--line); padding:2px 4px; vertical-align:top; }
td.name { cursor:pointer; color:var(--acc); white-space:nowrap; }
td.type { color:var(--dim); white-space:nowrap; }
td.repr { word-break:break-all; white-space:pre-wrap; }
tr.changed td.repr { background:#fff6c9; }
tr.sel td { background:#e7eefa; }
#exception { color:var(--fail); font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; white-space:pre-wrap; }
#value { font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; white-space:pre-wrap; }
#history { margin:0; padding:0; list-style:none; font-family:ui-monospace, Menlo, Consolas, monospace; font-size:12px; }
#history li { cursor:pointer; padding:1px 2px; border-bottom:1px solid var(--line); white-space:pre-wrap; word-break:break-all; }
#history li.now { background:var(--hi); }
#history .st { color:var(--dim); display:inline-block; min-width:6ch; }
.empty { color:var(--dim); font-style:italic; }
</style>
</head>
<body>
<header>
  <h1 id="test-id"></h1>
  <div id="failure-msg"></div>
  <div id="window-note"></div>
</header>
<div id="controls">
  <div id="buttons">
    <button id="btn-start" title="first step (Home)">|&#x25C0;</button>
    <button id="btn-back-over" title="previous step in this frame (Shift+Left)">&#x21B6;</button>
    <button id="btn-back" title="one step back (Left)">&#x25C0;</button>
    <button id="btn-fwd" title="one step forward (Right)">&#x25B6;</button>
    <button id="btn-over" title="next step in this frame (Shift+Right)">&#x21B7;</button>
    <button id="btn-end" title="last step (End)">&#x25B6;|</button>
    <button id="btn-fail" title="the failure (f)">failure</button>
    <span id="pos">step <span id="step-num"></span> / <span id="step-last"></span></span>
    <span id="kind"></span>
    <span id="where"></span>
  </div>
  <div id="strip">
    <canvas id="depth" height="18"></canvas>
    <div id="fail-marker" hidden></div>
    <input id="scrubber" type="range" aria-label="step">
  </div>
  <div id="help">&#x2190;/&#x2192; step &middot; Shift+&#x2190;/&#x2192; step over &middot; PgUp/PgDn 100 steps &middot; Home/End &middot; f failure &middot; click a variable for its history</div>
</div>
<main>
  <section id="source-pane"><div id="file-name"></div><div id="source"></div></section>
  <aside id="side">
    <h2>exception in flight</h2><div id="exception"></div>
    <div id="value-box" hidden><h2>value</h2><div id="value"></div></div>
    <h2>call stack</h2><ol id="stack"></ol>
    <h2>locals of <span id="locals-of"></span></h2>
    <table><tbody id="locals"></tbody></table>
    <h2>history of <span id="history-of">(click a variable)</span></h2>
    <ul id="history"></ul>
  </aside>
</main>
<script type="application/json" id="film-data">{{DATA}}</script>
<script>
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("film-data").textContent);
  const K = {CALL: 1, LINE: 2, RETURN: 3, EXCEPTION: 4, HANDLED: 5, UNWIND: 6, YIELD: 7, RESUME: 8, CHECKPOINT: 9};
  const S = D.steps, A = D.acts, B = D.bindings, V = D.vals;
  const N = S.kind.length, LO = D.lo, HI = LO + N - 1;
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
  const FAIL = D.failure && D.failure.step >= LO && D.failure.step <= HI ? D.failure.step : null;

  // -- indexes, built once -------------------------------------------------
  const stepVal = new Map();
  for (const [off, v] of D.step_values) stepVal.set(off, v);
  const actSteps = [];  // per act: offsets of its steps, ascending
  for (let i = 0; i < A.frame.length; i++) actSteps.push([]);
  for (let off = 0; off < N; off++) actSteps[S.act[off]].push(off);
  const frameNames = new Map();  // frame -> Map(name -> [start, end)) into B
  for (let i = 0; i < B.frame.length;) {
    const f = B.frame[i], n = B.name[i]; let j = i;
    while (j < B.frame.length && B.frame[j] === f && B.name[j] === n) j++;
    if (!frameNames.has(f)) frameNames.set(f, new Map());
    frameNames.get(f).set(n, [i, j]);
    i = j;
  }
  const objSnaps = new Map();  // obj -> value indexes sorted by (step, index)
  for (let v = 0; v < V.obj.length; v++) {
    const o = V.obj[v]; if (o < 0) continue;
    if (!objSnaps.has(o)) objSnaps.set(o, []);
    objSnaps.get(o).push(v);
  }
  for (const arr of objSnaps.values()) arr.sort((a, b) => V.step[a] - V.step[b] || a - b);

  // the last index in [lo, hi) whose key(i) <= x, or -1
  function lastAtOrBefore(lo, hi, key, x) {
    let a = lo, b = hi - 1, r = -1;
    while (a <= b) { const m = (a + b) >> 1; if (key(m) <= x) { r = m; a = m + 1; } else b = m - 1; }
    return r;
  }
  function valueAt(v, step) {
    if (v < 0) return -1;
    const o = V.obj[v]; if (o < 0) return v;
    const arr = objSnaps.get(o);
    const i = lastAtOrBefore(0, arr.length, (k) => V.step[arr[k]], step);
    return i < 0 ? v : arr[i];
  }
  function valueText(v) {
    if (v < 0) return ["?", "<missing value>"];
    let t = V.repr[v];
    const fl = V.flags[v], notes = [];
    if (fl & 2) notes.push("redacted"); if (fl & 1) notes.push("truncated"); if (fl & 4) notes.push("could not be rendered");
    if (notes.length) t += "  (" + notes.join(", ") + ")";
    return [D.types[V.type[v]], t];
  }
  const codeOf = (act) => D.codes[A.code[act]];
  const fileOf = (act) => D.files[codeOf(act)[0]] || {path: "?", source: null, nodes: {}};
  const threadOf = (act) => A.thread[act];
  function lineOf(act, off) {
    const arr = actSteps[act];
    const i = lastAtOrBefore(0, arr.length, (k) => arr[k], off);
    return i < 0 ? (A.line0 ? A.line0[act] : 0) : S.line[arr[i]];
  }
  function chain(act) { const out = []; for (let a = act; a >= 0; a = A.parent[a]) out.push(a); return out.reverse(); }
  function locals(frame, step) {
    const names = frameNames.get(frame); const out = [];
    if (!names) return out;
    for (const [n, [i, j]] of names) {
      if (B.step[i] > step) continue;
      const k = lastAtOrBefore(i, j, (x) => B.step[x], step);
      if (k < 0 || B.value[k] < 0) continue;
      out.push({name: D.names[n], nameIx: n, first: B.step[i], since: B.step[k], value: valueAt(B.value[k], step)});
    }
    out.sort((a, b) => a.first - b.first || a.nameIx - b.nameIx);
    return out;
  }
  function exceptionAt(off) {
    const thread = threadOf(S.act[off]); const unwound = new Set();
    let found = -1, fv = -1, fo = -1, budget = 200000;
    for (let j = off; j >= 0 && budget-- > 0; j--) {
      const a = S.act[j]; if (threadOf(a) !== thread) continue;
      const k = S.kind[j];
      if (k === K.UNWIND) { unwound.add(a); continue; }
      if (k === K.HANDLED && unwound.has(a)) continue;
      if (k === K.EXCEPTION) {
        const v = stepVal.has(j) ? stepVal.get(j) : -1, o = v >= 0 ? V.obj[v] : -1;
        if (found < 0) { found = j; fv = v; fo = o; continue; }
        if (v === fv || (o >= 0 && o === fo)) { found = j; continue; }
      }
      break;
    }
    return found < 0 ? null : {step: LO + found, value: valueAt(fv, LO + off)};
  }

  // -- the source view: one <ol> per file, built when first shown ------------
  const srcCache = new Map(); let shownFile = null, curLi = [];
  function sourceList(fileIx) {
    if (srcCache.has(fileIx)) return srcCache.get(fileIx);
    const f = D.files[fileIx]; const ol = el("ol", undefined, "src");
    if (f && f.source !== null) {
      for (const line of f.source.split("\n")) ol.appendChild(el("li", line === "" ? " " : line));
    }
    srcCache.set(fileIx, ol); return ol;
  }

  // -- state ------------------------------------------------------------------
  let cur = LO, selFrameAct = null, histSel = null;
  function clamp(step) { return Math.max(LO, Math.min(HI, step | 0)); }
  function go(step, keepFrame) {
    cur = clamp(step); if (!keepFrame) selFrameAct = null; render();
    try { history.replaceState(null, "", "#step=" + cur); } catch (e) { /* file:// in some browsers */ }
  }
  function stepOver(dir) {
    const off = cur - LO, d = A.depth[S.act[off]], t = threadOf(S.act[off]);
    for (let j = off + dir; j >= 0 && j < N; j += dir) {
      const a = S.act[j];
      if (threadOf(a) === t && A.depth[a] <= d) return go(LO + j);
    }
    go(dir > 0 ? HI : LO);
  }

  function render() {
    const off = cur - LO, act = S.act[off], kind = S.kind[off];
    $("step-num").textContent = String(cur);
    $("scrubber").value = String(cur);
    const kn = D.kinds[String(kind)] || ("kind" + kind);
    $("kind").textContent = kn; $("kind").className = kn;
    const file = fileOf(act), line = S.line[off], fn = codeOf(act)[1];
    const node = file.nodes[String(line)];
    $("where").textContent = file.path + ":" + line + " in " + fn + (node ? "  [" + node + "]" : "") +
      (D.threads.length > 1 ? "  (" + D.threads[threadOf(act)] + ")" : "");
    // stack
    const ch = chain(act);
    if (selFrameAct === null || ch.indexOf(selFrameAct) < 0) selFrameAct = act;
    const stack = $("stack"); stack.textContent = "";
    for (const a of ch) {
      const li = el("li"); li.appendChild(el("span", codeOf(a)[1] + " "));
      li.appendChild(el("span", fileOf(a).path + ":" + (a === act ? line : lineOf(a, off)), "loc"));
      if (a === selFrameAct) li.className = "sel";
      li.addEventListener("click", () => { selFrameAct = a; render(); });
      stack.appendChild(li);
    }
    // source of the selected frame
    const selLine = selFrameAct === act ? line : lineOf(selFrameAct, off);
    const fileIx = codeOf(selFrameAct)[0];
    if (shownFile !== fileIx) {
      const box = $("source"); box.textContent = ""; box.appendChild(sourceList(fileIx)); shownFile = fileIx;
      const f = D.files[fileIx];
      $("file-name").textContent = f ? f.path + (f.source === null ? "  (source not embedded)" : "") : "?";
    }
    for (const li of curLi) li.className = "";
    curLi = [];
    const ol = sourceList(fileIx), li = ol.children[selLine - 1];
    if (li) {
      li.className = "cur" + (kind === K.EXCEPTION || kind === K.UNWIND ? " exc" : "") + (selFrameAct !== act ? " outer" : "");
      curLi.push(li);
      const pane = $("source-pane"), r = li.getBoundingClientRect(), p = pane.getBoundingClientRect();
      if (r.top < p.top + 24 || r.bottom > p.bottom) pane.scrollTop += r.top - p.top - pane.clientHeight / 2;
    }
    // locals
    const frame = A.frame[selFrameAct];
    $("locals-of").textContent = codeOf(selFrameAct)[1];
    const body = $("locals"); body.textContent = "";
    const ls = locals(frame, cur);
    if (!ls.length) { const tr = el("tr"); tr.appendChild(el("td", "(none)", "empty")); body.appendChild(tr); }
    for (const l of ls) {
      const [t, r] = valueText(l.value);
      const tr = el("tr"); tr.dataset.name = l.name;
      if (l.since === cur || (V.obj[l.value] >= 0 && V.step[l.value] === cur)) tr.className = "changed";
      if (histSel && histSel.frame === frame && histSel.name === l.nameIx) tr.className += " sel";
      const nameTd = el("td", l.name, "name");
      nameTd.addEventListener("click", () => { histSel = {frame: frame, name: l.nameIx, label: l.name, fn: codeOf(selFrameAct)[1]}; render(); });
      tr.appendChild(nameTd); tr.appendChild(el("td", t, "type")); tr.appendChild(el("td", r, "repr"));
      body.appendChild(tr);
    }
    // exception in flight, value of this step
    const exc = exceptionAt(off);
    if (exc) { $("exception").textContent = valueText(exc.value)[1] + "  (raised at step " + exc.step + ")"; $("exception").className = ""; }
    else { $("exception").textContent = "none"; $("exception").className = "empty"; }
    const sv = kind !== K.EXCEPTION && stepVal.has(off) ? stepVal.get(off) : -1;
    $("value-box").hidden = sv < 0;
    if (sv >= 0) { const [t, r] = valueText(valueAt(sv, cur)); $("value").textContent = (kn === "return" ? "returns " : kn + ": ") + t + ": " + r; }
    renderHistory();
  }

  function historyOf(frame, name) {
    const rng = (frameNames.get(frame) || new Map()).get(name); const out = [];
    if (!rng) return out;
    const [i, j] = rng;
    for (let k = i; k < j; k++) {
      const end = k + 1 < j ? B.step[k + 1] : Infinity, v = B.value[k];
      const push = (step, val) => {
        const text = val < 0 ? "<unbound>" : valueText(val).join(": ");
        if (!out.length || out[out.length - 1].text !== text) out.push({step: step, text: text});
      };
      push(B.step[k], valueAt(v, B.step[k]));
      if (v >= 0 && V.obj[v] >= 0) {
        for (const s of objSnaps.get(V.obj[v])) if (V.step[s] > B.step[k] && V.step[s] < end) push(V.step[s], s);
      }
      if (out.length > 2000) break;
    }
    return out;
  }
  function renderHistory() {
    const ul = $("history"); ul.textContent = "";
    if (!histSel) return;
    $("history-of").textContent = histSel.label + " in " + histSel.fn;
    const hs = historyOf(histSel.frame, histSel.name);
    let now = -1;
    hs.forEach((h, i) => { if (h.step <= cur) now = i; });
    hs.slice(0, 2000).forEach((h, i) => {
      const li = el("li"); li.appendChild(el("span", String(h.step), "st")); li.appendChild(el("span", " " + h.text));
      if (i === now) li.className = "now";
      li.addEventListener("click", () => go(h.step, true));
      ul.appendChild(li);
    });
  }

  // -- the timeline -------------------------------------------------------------
  function drawDepth() {
    const c = $("depth"), w = Math.max(100, c.clientWidth | 0); c.width = w;
    const g = c.getContext("2d"); g.clearRect(0, 0, w, 18);
    let maxD = 1; for (let i = 0; i < A.depth.length; i++) maxD = Math.max(maxD, A.depth[i]);
    const per = N / w; g.fillStyle = "#9bb4d6";
    for (let x = 0; x < w; x++) {
      let d = 0; const a = Math.floor(x * per), b = Math.max(a + 1, Math.floor((x + 1) * per));
      for (let o = a; o < b && o < N; o += Math.max(1, ((b - a) / 64) | 0)) d = Math.max(d, A.depth[S.act[o]]);
      const h = Math.max(1, Math.round(16 * (d + 1) / (maxD + 1)));
      g.fillRect(x, 18 - h, 1, h);
    }
    if (FAIL !== null) {
      const m = $("fail-marker"); m.hidden = false;
      m.style.left = (N > 1 ? (100 * (FAIL - LO) / (N - 1)) : 0) + "%";
    }
  }

  // -- wiring ---------------------------------------------------------------------
  $("test-id").textContent = D.test + "  (" + D.outcome + ")";
  if (D.failure) $("failure-msg").textContent = D.failure.message + "  (step " + D.failure.step + ")";
  const notes = [];
  if (LO > D.first || HI < D.last) notes.push("This page holds steps " + LO + "-" + HI + " of " + D.first + "-" + D.last +
    " (a window around the failure); any other step: escope replay " + D.test + " --step N");
  if (D.dropped) notes.push(D.dropped + " older steps were dropped while recording (--escope-max-events).");
  $("window-note").textContent = notes.join(" ");
  $("step-last").textContent = String(HI);
  const sc = $("scrubber"); sc.min = String(LO); sc.max = String(HI);
  sc.addEventListener("input", () => go(Number(sc.value)));
  $("btn-start").addEventListener("click", () => go(LO));
  $("btn-end").addEventListener("click", () => go(HI));
  $("btn-back").addEventListener("click", () => go(cur - 1));
  $("btn-fwd").addEventListener("click", () => go(cur + 1));
  $("btn-over").addEventListener("click", () => stepOver(1));
  $("btn-back-over").addEventListener("click", () => stepOver(-1));
  $("btn-fail").addEventListener("click", () => go(FAIL !== null ? FAIL : HI));
  document.addEventListener("keydown", (e) => {
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    let done = true;
    switch (e.key) {
      case "ArrowRight": e.shiftKey ? stepOver(1) : go(cur + 1); break;
      case "ArrowLeft": e.shiftKey ? stepOver(-1) : go(cur - 1); break;
      case "PageDown": go(cur + 100); break;
      case "PageUp": go(cur - 100); break;
      case "Home": go(LO); break;
      case "End": go(HI); break;
      case "f": go(FAIL !== null ? FAIL : HI); break;
      default: done = false;
    }
    if (done) e.preventDefault();
  });
  function fromHash() {
    const m = /step=(-?\d+)/.exec(location.hash || "");
    return m ? clamp(Number(m[1])) : (FAIL !== null ? FAIL : LO);
  }
  window.addEventListener("hashchange", () => { const s = fromHash(); if (s !== cur) go(s); });
  window.addEventListener("resize", drawDepth);
  window.escopeFilm = {go: go, step: () => cur, lo: LO, hi: HI, failure: FAIL};
  drawDepth();
  go(fromHash());
  document.body.dataset.ready = "1";
})();
</script>
</body>
</html>
"""
