(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("gp-data").textContent);
  var canvas = document.getElementById("gp-canvas");
  var svg = document.getElementById("gp-svg");
  var details = document.getElementById("gp-details");
  var zoomLabel = document.getElementById("gp-zoom-level");
  var nodes = data.nodes || [], edges = data.edges || [];
  var byId = {};
  nodes.forEach(function (n) { byId[n.id] = n; });

  // -- pan and zoom: the SVG's viewBox is the camera ----------------------------------------
  var base = (svg.getAttribute("viewBox") || "0 0 100 100").split(/[\s,]+/).map(Number);
  var pad = Math.max(base[2], base[3]) * 0.02;
  var PT = 96 / 72;  // CSS pixels per SVG unit (Graphviz draws in points) at 100%
  // The whole graph in view, but a small graph no larger than 125%: huge text helps nobody.
  function homeView() {
    var h = { x: base[0] - pad, y: base[1] - pad, w: base[2] + 2 * pad, h: base[3] + 2 * pad };
    var r = canvas.getBoundingClientRect(), most = 1.25 * PT;
    if (r.width && r.height && Math.min(r.width / h.w, r.height / h.h) > most) {
      var w = r.width / most, hh = r.height / most;
      h = { x: h.x + (h.w - w) / 2, y: h.y + (h.h - hh) / 2, w: w, h: hh };
    }
    return h;
  }
  var home = homeView();
  var vb = { x: home.x, y: home.y, w: home.w, h: home.h };
  var anim = null;

  function apply() {
    svg.setAttribute("viewBox", [vb.x, vb.y, vb.w, vb.h].join(" "));
    zoomLabel.textContent = Math.round(100 / (unitsPerPixel() * PT)) + "%";
  }
  function unitsPerPixel() {
    var r = canvas.getBoundingClientRect();
    if (!r.width || !r.height) { return 1; }
    return Math.max(vb.w / r.width, vb.h / r.height);  // "meet": the larger ratio wins
  }
  function toSvg(clientX, clientY) {
    var r = canvas.getBoundingClientRect(), u = unitsPerPixel();
    var cx = vb.x + vb.w / 2, cy = vb.y + vb.h / 2;
    return { x: cx + (clientX - (r.left + r.width / 2)) * u,
             y: cy + (clientY - (r.top + r.height / 2)) * u };
  }
  function stop() { if (anim) { cancelAnimationFrame(anim); anim = null; } }
  function zoomAt(factor, clientX, clientY) {
    stop();
    var z = home.w / (vb.w / factor);
    if (z < 0.05 || z > 40) { return; }
    var p = toSvg(clientX, clientY);
    vb = { x: p.x - (p.x - vb.x) / factor, y: p.y - (p.y - vb.y) / factor,
           w: vb.w / factor, h: vb.h / factor };
    apply();
  }
  function zoomCenter(factor) {
    var r = canvas.getBoundingClientRect();
    zoomAt(factor, r.left + r.width / 2, r.top + r.height / 2);
  }
  function animateTo(target) {
    stop();
    var from = { x: vb.x, y: vb.y, w: vb.w, h: vb.h }, t0 = null, dur = 260;
    function step(t) {
      if (t0 === null) { t0 = t; }
      var k = Math.min(1, (t - t0) / dur), e = 1 - Math.pow(1 - k, 3);
      vb = { x: from.x + (target.x - from.x) * e, y: from.y + (target.y - from.y) * e,
             w: from.w + (target.w - from.w) * e, h: from.h + (target.h - from.h) * e };
      apply();
      anim = k < 1 ? requestAnimationFrame(step) : null;
    }
    anim = requestAnimationFrame(step);
  }
  function fit() { home = homeView(); animateTo({ x: home.x, y: home.y, w: home.w, h: home.h }); }

  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var dy = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY;
    zoomAt(Math.exp(-dy * 0.0015), ev.clientX, ev.clientY);
  }, { passive: false });

  var drag = null, suppressClick = false;
  canvas.addEventListener("pointerdown", function (ev) {
    if (ev.button !== 0) { return; }
    stop();
    drag = { x: ev.clientX, y: ev.clientY, vx: vb.x, vy: vb.y, u: unitsPerPixel(), moved: false,
             id: ev.pointerId };
  });
  canvas.addEventListener("pointermove", function (ev) {
    if (!drag) { return; }
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (!drag.moved && Math.abs(dx) + Math.abs(dy) < 4) { return; }
    if (!drag.moved) {
      drag.moved = true;
      canvas.classList.add("gp-dragging");
      try { canvas.setPointerCapture(drag.id); } catch (e) { /* not a real pointer */ }
    }
    vb.x = drag.vx - dx * drag.u;
    vb.y = drag.vy - dy * drag.u;
    apply();
  });
  function endDrag() {
    if (drag && drag.moved) { suppressClick = true; setTimeout(function () { suppressClick = false; }, 0); }
    drag = null;
    canvas.classList.remove("gp-dragging");
  }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);

  document.getElementById("gp-zoom-in").addEventListener("click", function () { zoomCenter(1.25); });
  document.getElementById("gp-zoom-out").addEventListener("click", function () { zoomCenter(0.8); });
  document.getElementById("gp-fit").addEventListener("click", fit);
  document.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA")) { return; }
    if (ev.key === "+" || ev.key === "=") { zoomCenter(1.25); }
    else if (ev.key === "-" || ev.key === "_") { zoomCenter(0.8); }
    else if (ev.key === "0") { fit(); }
    else if (ev.key === "Escape") { clearMarks(); }
  });
  window.addEventListener("resize", apply);

  // Fit elements to the view: centre them and zoom so they fill most of it (never closer than
  // 200%, never further than the whole graph at 20x its home size).
  function reveal(els) {
    if (!els.length) { return; }
    var r = canvas.getBoundingClientRect();
    if (!r.width || !r.height) { return; }
    var x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    els.forEach(function (el) {
      var b = el.getBoundingClientRect();
      x0 = Math.min(x0, b.left); y0 = Math.min(y0, b.top);
      x1 = Math.max(x1, b.right); y1 = Math.max(y1, b.bottom);
    });
    var p0 = toSvg(x0, y0), p1 = toSvg(x1, y1);
    var bw = p1.x - p0.x, bh = p1.y - p0.y, aspect = r.width / r.height;
    var w = Math.max(bw * 1.35, bh * 1.35 * aspect, r.width / (2 * PT));
    if (w > home.w * 20) { w = home.w * 20; }
    var h = w / aspect;
    var cx = (p0.x + p1.x) / 2, cy = (p0.y + p1.y) / 2;
    animateTo({ x: cx - w / 2, y: cy - h / 2, w: w, h: h });
  }

  // -- marks -----------------------------------------------------------------------------------
  function clearMarks() {
    Array.prototype.forEach.call(svg.querySelectorAll(".gp-highlight, .gp-selected"), function (el) {
      el.classList.remove("gp-highlight"); el.classList.remove("gp-selected");
    });
    Array.prototype.forEach.call(document.querySelectorAll(".gp-finding.gp-active"), function (el) {
      el.classList.remove("gp-active");
    });
  }
  function clearSelection() {
    Array.prototype.forEach.call(svg.querySelectorAll(".gp-selected"), function (el) {
      el.classList.remove("gp-selected");
    });
  }
  function firstText(g) {
    var t = g.querySelector("text");
    return t ? t.textContent : "";
  }
  // The SVG node for a JSON node id: the page's JSON is the drawn view's, so the ids agree.
  function nodeEl(id) {
    var el = document.getElementById("n" + id);
    return el && el.classList.contains("node") ? el : null;
  }
  function cutEls(c) {
    return Array.prototype.slice.call(svg.querySelectorAll("g.edge.cut" + c));
  }

  // -- details ---------------------------------------------------------------------------------
  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }
  var consumers = {};
  edges.forEach(function (e) {
    if (e.kind === "cut") { return; }
    (consumers[e.source] = consumers[e.source] || []).push(e.target);
  });
  var lossName = {};
  (data.losses || []).forEach(function (l) { lossName[l.node] = l.name; });
  function reachedBy(id) {
    var p = (data.params || []).filter(function (q) { return q.node === id; })[0];
    if (p) { return p.reached_by || []; }
    var seen = {}, stack = [id], out = [];
    seen[id] = true;
    while (stack.length) {
      var v = stack.pop();
      if (lossName[v] !== undefined) { out.push(lossName[v]); }
      (consumers[v] || []).forEach(function (w) { if (!seen[w]) { seen[w] = true; stack.push(w); } });
    }
    return out;
  }
  function findingsAbout(id) {
    var out = [];
    (data.cuts || []).forEach(function (c, i) {
      var f = c.from || {}, t = c.to || {};
      if (f.node === id || t.node === id) {
        out.push({ sev: c.severity, text: (c.kind || "data") + " cut " + (f.node === id ? "leaves" : "enters") + " here", cut: i });
      }
    });
    (data.detached || []).forEach(function (d) {
      if (d.node === id) { out.push({ sev: d.severity, text: d.kind === "reentry_leaf" ? "leaf rebuilt outside autograd" : "no gradient reaches it" }); }
    });
    (data.freed || []).forEach(function (f) {
      if (f.node === id) { out.push({ sev: f.severity, text: "freed by an earlier backward" }); }
    });
    return out;
  }
  function row(k, v) { return v === "" || v === null || v === undefined ? "" : "<tr><th>" + esc(k) + "</th><td>" + v + "</td></tr>"; }
  function code(v) { return v === null || v === undefined || v === "" ? "" : "<code>" + esc(v) + "</code>"; }
  function pills(list) { return list.length ? list.map(function (x) { return '<span class="gp-pill">' + esc(x) + "</span>"; }).join("") : ""; }
  function showNode(id, el) {
    var n = byId[id];
    if (!n) { return; }
    if (n.kind === "module") { showGroup(id); return; }
    var shape = n.shape === null || n.shape === undefined ? "" : (n.shape.length ? n.shape.join(" × ") : "scalar");
    var p = (data.params || []).filter(function (q) { return q.node === id; })[0];
    var reach = reachedBy(id);
    var fs = findingsAbout(id);
    var html = '<div class="gp-d-title"><span>' + esc(n.name && n.kind !== "op" ? n.name : n.label) + "</span>" +
      '<span class="gp-kind gp-kind-' + esc(n.kind) + '">' + esc(n.kind === "reentry_leaf" ? "re-entry leaf" : n.kind) + "</span></div>" +
      "<table>" +
      row("op", code(n.op)) +
      row("module", n.module ? code(n.module) : '<span class="gp-dim">none</span>') +
      row("name", n.name && n.name !== n.label ? code(n.name) : "") +
      row("shape", shape ? code(shape) : "") +
      row("dtype", code(n.dtype)) +
      row("device", code(n.device)) +
      row("source", code(n.location)) +
      row("optimizers", p && p.optimizers && p.optimizers.length ? pills(p.optimizers) : "") +
      row("frozen", p && p.frozen ? "yes (requires_grad=False)" : "") +
      row("freed", n.freed ? "yes: an earlier backward freed its saved tensors" : "") +
      row("reached by", reach.length ? pills(reach) : '<span class="gp-dim">no loss</span>') +
      row("node", code("n" + n.id)) +
      "</table>";
    if (fs.length) {
      html += '<ul class="gp-d-findings">' + fs.map(function (f) {
        return '<li><span class="gp-badge gp-sev-' + esc(f.sev) + '">' + esc(f.sev) + "</span>" + esc(f.text) + "</li>";
      }).join("") + "</ul>";
    }
    details.innerHTML = html;
  }
  function showCut(i) {
    var c = (data.cuts || [])[i];
    if (!c) { return; }
    var chain = (c.chain || []).map(function (x) { return x.op; }).filter(Boolean).join(" → ");
    var f = c.from || {}, t = c.to || {};
    details.innerHTML = '<div class="gp-d-title"><span>' + esc((c.kind || "data") + " cut") + "</span>" +
      '<span class="gp-badge gp-sev-' + esc(c.severity) + '">' + esc(c.severity) + "</span></div><table>" +
      row("chain", code(chain)) +
      row("at", code(c.location)) +
      row("re-enters", c.reentry_location && c.reentry_location !== c.location ? code(c.reentry_location) : "") +
      row("from", code([f.op, f.module && "(" + f.module + ")"].filter(Boolean).join(" "))) +
      row("to", code([t.op, t.module && "(" + t.module + ")"].filter(Boolean).join(" "))) +
      row("blocks", (c.blocked || []).map(function (b) { return "<b>" + esc(b.loss) + "</b> ↛ " + esc((b.params || []).join(", ")); }).join("<br>")) +
      "</table>";
  }

  // -- folded modules: detail parsed on first use, pictures opened in place ------------------------
  var detailData = null;
  function detail() {
    if (detailData === null) {
      var el = document.getElementById("gp-detail");
      detailData = el ? JSON.parse(el.textContent) : { groups: {} };
    }
    return detailData;
  }
  function shapeText(s) { return s === null || s === undefined ? "" : (s.length ? s.join(" × ") : "scalar"); }
  function showGroup(id) {
    var n = byId[id], gr = detail().groups[String(id)] || { members: [], modules: [], count: 0 };
    var rows = (gr.members || []).slice(0, 40).map(function (m) {
      return "<li><code>" + esc(m[1]) + "</code>" + (m[3] ? ' <span class="gp-dim">' + esc(m[3]) + "</span>" : "") +
        (m[5] ? " " + code(shapeText(m[5])) : "") + (m[6] ? ' <span class="gp-dim">' + esc(m[6]) + "</span>" : "") + "</li>";
    }).join("");
    var more = (gr.count || 0) - Math.min(40, (gr.members || []).length);
    var html = '<div class="gp-d-title"><span>' + esc(gr.name || n.name || n.label) + "</span>" +
      '<span class="gp-kind gp-kind-module">folded</span></div><table>' +
      row("holds", esc((n.label || "").split("\n").slice(1).join(" · ") || (gr.count + " nodes"))) +
      row("modules", (gr.modules || []).slice(0, 6).map(code).join(" ") + ((gr.modules || []).length > 6 ? " …" : "")) +
      row("reached by", pills(reachedBy(id))) +
      row("node", code("n" + id)) + "</table>" +
      (gr.svg ? '<button type="button" class="gp-open" id="gp-open" data-group="' + esc(id) + '">open in place</button>' : "") +
      (rows ? '<ul class="gp-members">' + rows + "</ul>" : "") +
      (more > 0 ? '<p class="gp-dim">and ' + more + " more</p>" : "");
    details.innerHTML = html;
    var btn = document.getElementById("gp-open");
    if (btn) { btn.addEventListener("click", function () { openGroup(id); }); }
  }
  function showInner(gid, k) {
    var gr = detail().groups[String(gid)], m = gr && gr.nodes[k];
    if (!m) { return; }
    details.innerHTML = '<div class="gp-d-title"><span>' + esc(m[0]) + "</span>" +
      '<span class="gp-kind gp-kind-' + esc(m[1]) + '">' + esc(m[1] === "module" ? "folded" : m[1]) + "</span></div><table>" +
      row("inside", code(gr.name)) + row("op", code(m[2])) + row("module", code(m[3])) +
      row("shape", m[4] ? code(shapeText(m[4])) : "") + row("source", code(m[5])) +
      row("holds", m[1] === "module" ? esc(m[6] + " nodes") : "") + "</table>";
  }
  var opened = {};
  var NS = svg.namespaceURI;
  function closeGroup(id) {
    var holder = opened[id];
    if (!holder) { return; }
    holder.parentNode.removeChild(holder);
    delete opened[id];
    var node = nodeEl(id);
    if (node) { node.classList.remove("gp-opened"); }
  }
  // The group's pre-rendered picture, nested in the main SVG over the folded node, at its own
  // scale, on a card; "close" folds it again.
  function openGroup(id) {
    if (opened[id]) { reveal([opened[id]]); return true; }
    var gr = detail().groups[String(id)], node = nodeEl(id);
    if (!gr || !gr.svg || !node) { return false; }
    var holder = document.createElementNS(NS, "g");
    holder.setAttribute("class", "gp-sub");
    holder.setAttribute("id", "gp-sub-" + id);
    holder.innerHTML = gr.svg;
    var inner = holder.querySelector("svg");
    if (!inner) { return false; }
    var v = (inner.getAttribute("viewBox") || "0 0 100 100").split(/[\s,]+/).map(Number);
    var b = node.getBBox(), cx = b.x + b.width / 2, cy = b.y + b.height / 2, m = 10;
    var card = document.createElementNS(NS, "rect");
    card.setAttribute("x", cx - v[2] / 2 - m); card.setAttribute("y", cy - v[3] / 2 - m - 14);
    card.setAttribute("width", v[2] + 2 * m); card.setAttribute("height", v[3] + 2 * m + 14);
    card.setAttribute("rx", 8); card.setAttribute("class", "gp-sub-card");
    inner.setAttribute("x", cx - v[2] / 2); inner.setAttribute("y", cy - v[3] / 2);
    inner.setAttribute("width", v[2]); inner.setAttribute("height", v[3]);
    var close = document.createElementNS(NS, "text");
    close.setAttribute("x", cx + v[2] / 2 + m - 6); close.setAttribute("y", cy - v[3] / 2 - 4);
    close.setAttribute("text-anchor", "end"); close.setAttribute("class", "gp-sub-close");
    close.textContent = "× close";
    close.addEventListener("click", function (ev) { ev.stopPropagation(); closeGroup(id); });
    holder.insertBefore(card, inner);
    holder.appendChild(close);
    node.parentNode.appendChild(holder);
    node.classList.add("gp-opened");
    opened[id] = holder;
    reveal([holder]);
    return true;
  }

  // -- search: drawn nodes, parameters, and what the folded groups hold ---------------------------
  var search = document.getElementById("gp-search"), searchCount = document.getElementById("gp-search-count");
  function has(x, q) { return x !== null && x !== undefined && String(x).toLowerCase().indexOf(q) >= 0; }
  function runSearch(text) {
    Array.prototype.forEach.call(svg.querySelectorAll(".gp-found"), function (el) { el.classList.remove("gp-found"); });
    var q = (text || "").trim().toLowerCase();
    if (!q) { searchCount.textContent = ""; return []; }
    var hits = {}, order = [];
    function hit(id) { if (!hits[id]) { hits[id] = true; order.push(id); } }
    nodes.forEach(function (n) { if (has(n.label, q) || has(n.name, q) || has(n.module, q)) { hit(n.id); } });
    (data.params || []).forEach(function (p) { if (has(p.name, q)) { hit(p.node); } });
    var groups = detail().groups;
    Object.keys(groups).forEach(function (gid) {
      var gr = groups[gid];
      if (has(gr.name, q) || (gr.modules || []).some(function (m) { return has(m, q); }) ||
          (gr.members || []).some(function (m) { return has(m[1], q) || has(m[3], q) || has(m[4], q); })) {
        hit(Number(gid));
      }
    });
    var els = order.map(nodeEl).filter(Boolean);
    els.forEach(function (el) { el.classList.add("gp-found"); });
    searchCount.textContent = els.length ? els.length + " found" : "not found";
    if (els.length) { reveal(els); if (els.length === 1) { showNode(order[0], els[0]); } }
    return order;
  }
  var searchTimer = null;
  search.addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(function () { runSearch(search.value); }, 200);
  });
  search.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter") { clearTimeout(searchTimer); runSearch(search.value); }
    else if (ev.key === "Escape") { search.value = ""; runSearch(""); }
  });

  // -- clicks ----------------------------------------------------------------------------------
  function selectFinding(li) {
    clearMarks();
    li.classList.add("gp-active");
    var els = [];
    var ids = (li.dataset.nodes || "").split(" ").filter(Boolean).map(Number);
    if (li.dataset.kind === "cut") {
      var c = Number(li.dataset.cut);
      els = cutEls(c);
      showCut(c);
    }
    if (!els.length) {  // not a cut, or its edge is not drawn: mark its nodes
      ids.forEach(function (id) {
        var el = nodeEl(id);
        if (el) { els.push(el); }
      });
      if (ids.length && li.dataset.kind !== "cut") { var el0 = nodeEl(ids[0]); if (el0) { showNode(ids[0], el0); } }
    }
    els.forEach(function (el) { el.classList.add("gp-highlight"); });
    reveal(els);
  }
  Array.prototype.forEach.call(document.querySelectorAll(".gp-finding"), function (li) {
    li.addEventListener("click", function () { selectFinding(li); });
    li.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); selectFinding(li); }
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll(".gp-param-row"), function (tr) {
    tr.addEventListener("click", function () {
      var id = Number(tr.dataset.node), el = nodeEl(id);
      clearSelection();
      if (el) { el.classList.add("gp-selected"); reveal([el]); }
      showNode(id, el);
    });
  });
  svg.addEventListener("click", function (ev) {
    if (suppressClick) { return; }
    var g = ev.target.closest ? ev.target.closest("g.node, g.edge") : null;
    if (!g) { return; }
    if (g.classList.contains("edge")) {
      var m = /(^|\s)cut(\d+)(\s|$)/.exec(g.getAttribute("class") || "");
      if (!m) { return; }
      var li = document.querySelector('.gp-finding[data-kind="cut"][data-cut="' + m[2] + '"]');
      if (li) { selectFinding(li); li.scrollIntoView({ block: "nearest", behavior: "smooth" }); }
      return;
    }
    var sub = /^g(\d+)_n(\d+)$/.exec(g.id || "");
    if (sub) { showInner(Number(sub[1]), Number(sub[2])); return; }
    var idm = /^n(\d+)$/.exec(g.id || "");
    if (!idm) { return; }
    clearSelection();
    g.classList.add("gp-selected");
    showNode(Number(idm[1]), g);
  });

  svg.addEventListener("dblclick", function (ev) {
    var g = ev.target.closest ? ev.target.closest("g.node") : null;
    var idm = g && /^n(\d+)$/.exec(g.id || "");
    if (idm && byId[Number(idm[1])] && byId[Number(idm[1])].kind === "module") { openGroup(Number(idm[1])); }
  });

  apply();
  window.graphprobe = { data: data, fit: fit, zoom: zoomCenter, select: selectFinding,
                        search: runSearch, open: openGroup, close: closeGroup, detail: detail,
                        reveal: reveal, animating: function () { return anim !== null; },
                        viewBox: function () { return [vb.x, vb.y, vb.w, vb.h]; } };
})();
