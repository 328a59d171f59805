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
