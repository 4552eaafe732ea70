// imgnet votes serve: the labeling page. Answers are posted as they are made; the server
// journals each one (fsync) before it answers, so "saved" means saved.
"use strict";
(function () {
  var state = {worker: "", synsets: [], wnid: null, grid: null, focus: 0, saved: 0, failed: 0, sent: 0, shown: 0,
    chain: Promise.resolve()};  // answers are posted one after another, so the journal keeps their order
  var $ = function (id) { return document.getElementById(id); };
  var ANSWER_KEYS = {y: "yes", "1": "yes", n: "no", "2": "no", m: "maybe", "3": "maybe"};

  function setStatus(text, isError) {
    var el = $("status");
    el.textContent = text;
    el.className = isError ? "error" : "";
    el.setAttribute("data-saved", String(state.saved));
    el.setAttribute("data-failed", String(state.failed));
  }

  function api(path) {
    return fetch(path, {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) { return r.json().then(function (d) { throw new Error(d.error || r.statusText); }); }
      return r.json();
    });
  }

  function query() {
    return "worker=" + encodeURIComponent(state.worker);
  }

  function loadSynsets() {
    return api("api/synsets?" + query()).then(function (doc) {
      state.synsets = doc.synsets;
      var select = $("synset");
      select.innerHTML = "";
      doc.synsets.forEach(function (s) {
        var opt = document.createElement("option");
        opt.value = s.wnid;
        opt.textContent = s.wnid + " " + s.words.split(",")[0] + " (" + s.answered_by_you + "/" + s.images + ")";
        select.appendChild(opt);
      });
      if (!state.wnid && doc.synsets.length) {
        var open = doc.synsets.filter(function (s) { return s.answered_by_you < s.images; })[0] || doc.synsets[0];
        state.wnid = open.wnid;
      }
      select.value = state.wnid || "";
    });
  }

  function showProgress(p) {
    $("progress").textContent = p.wnid + ": " + p.answered_by_you + " of " + p.images + " answered by you, " +
      p.with_votes + " with votes";
    var opt = $("synset").querySelector('option[value="' + p.wnid + '"]');
    var s = state.synsets.filter(function (x) { return x.wnid === p.wnid; })[0];
    if (opt && s) { s.answered_by_you = p.answered_by_you; opt.textContent = s.wnid + " " + s.words.split(",")[0] +
      " (" + p.answered_by_you + "/" + p.images + ")"; }
  }

  function loadGrid(offset) {
    if (!state.wnid) { setStatus("No images to label here."); return Promise.resolve(); }
    var q = "api/synset/" + encodeURIComponent(state.wnid) + "?" + query() + (offset === undefined ? "" : "&offset=" + offset);
    return api(q).then(function (g) {
      state.grid = g;
      $("words").textContent = g.words;
      $("gloss").textContent = g.gloss;
      var last = Math.max(0, Math.ceil(g.images / g.page_size) - 1);
      $("pageinfo").textContent = "page " + (g.offset / g.page_size + 1) + " of " + (last + 1);
      $("prev").disabled = g.offset === 0;
      $("next").disabled = g.offset / g.page_size >= last;
      renderGrid();
      showProgress(g);
      var first = g.items.findIndex(function (it) { return !it.answer; });
      setFocus(first < 0 ? 0 : first);
    });
  }

  function renderGrid() {
    var grid = $("grid");
    var loaded = 0;
    grid.innerHTML = "";
    grid.setAttribute("data-loaded", "0");  // images decoded so far (lets a test wait for the grid)
    state.grid.items.forEach(function (it, i) {
      var cell = document.createElement("div");
      cell.className = "cell";
      cell.tabIndex = -1;
      cell.setAttribute("role", "gridcell");
      cell.setAttribute("data-key", it.key);
      if (it.answer) { cell.setAttribute("data-answer", it.answer); }
      var img = document.createElement("img");
      img.src = "image/" + encodeURIComponent(it.key);
      img.alt = it.key;
      img.loading = "lazy";
      img.addEventListener("load", function () { loaded += 1; grid.setAttribute("data-loaded", String(loaded)); });
      cell.appendChild(img);
      var row = document.createElement("div");
      row.className = "answers";
      ["yes", "no", "maybe"].forEach(function (a) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = a;
        b.textContent = a;
        b.addEventListener("click", function () { setFocus(i); answer(i, a); });
        row.appendChild(b);
      });
      cell.appendChild(row);
      var meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = metaText(it);
      cell.appendChild(meta);
      cell.addEventListener("click", function () { setFocus(i); });
      grid.appendChild(cell);
    });
  }

  function metaText(it) { return it.key + " · " + it.votes + " vote" + (it.votes === 1 ? "" : "s"); }

  function cells() { return $("grid").querySelectorAll(".cell"); }

  function setFocus(i) {
    var all = cells();
    if (!all.length) { return; }
    state.focus = Math.max(0, Math.min(i, all.length - 1));
    all.forEach(function (c, k) { c.classList.toggle("focus", k === state.focus); });
    all[state.focus].focus({preventScroll: true});
    all[state.focus].scrollIntoView({block: "nearest"});
  }

  function answer(i, value) {
    if (!state.worker) { setStatus("Type your name first: answers are saved under it.", true); $("worker").focus(); return; }
    var item = state.grid.items[i];
    var cell = cells()[i];
    var wnid = state.wnid;
    cell.setAttribute("data-answer", value);
    var seq = ++state.sent;
    var body = JSON.stringify({key: item.key, wnid: wnid, worker: state.worker, answer: value});
    state.chain = state.chain.then(function () {
      return fetch("api/answer", {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json"}, body: body});
    })
      .then(function (r) { return r.json().then(function (d) { if (!r.ok) { throw new Error(d.error); } return d; }); })
      .then(function (d) {
        if (!item.answer) { item.votes += 1; }
        item.answer = value;
        var meta = cell.querySelector(".meta");
        if (meta) { meta.textContent = metaText(item); }
        state.saved += 1;
        setStatus("Saved " + state.saved + " answer" + (state.saved === 1 ? "" : "s") + " this session.");
        if (wnid === state.wnid && seq > state.shown) { state.shown = seq; showProgress(d.progress); }
      })
      .catch(function (e) {
        state.failed += 1;
        cell.removeAttribute("data-answer");
        setStatus("Not saved (" + e.message + "); answer again.", true);
      });
    if (i + 1 < state.grid.items.length) { setFocus(i + 1); }
  }

  function columns() {
    var all = cells();
    if (all.length < 2) { return 1; }
    var top = all[0].offsetTop, n = 0;
    all.forEach(function (c) { if (c.offsetTop === top) { n += 1; } });
    return Math.max(1, n);
  }

  function page(delta) {
    var g = state.grid;
    if (!g) { return; }
    var offset = g.offset + delta * g.page_size;
    if (offset < 0 || offset >= g.images) { return; }
    loadGrid(offset);
  }

  function synset(delta) {
    var i = state.synsets.findIndex(function (s) { return s.wnid === state.wnid; });
    var next = state.synsets[i + delta];
    if (next) { state.wnid = next.wnid; $("synset").value = next.wnid; loadGrid(); }
  }

  document.addEventListener("keydown", function (e) {
    if (e.target === $("worker") || e.target === $("synset") || e.ctrlKey || e.metaKey || e.altKey) { return; }
    var key = e.key.toLowerCase();
    if (ANSWER_KEYS[key]) { e.preventDefault(); answer(state.focus, ANSWER_KEYS[key]); return; }
    var moves = {arrowright: 1, l: 1, arrowleft: -1, h: -1, arrowdown: columns(), j: columns(), arrowup: -columns(), k: -columns()};
    if (moves[key] !== undefined) { e.preventDefault(); setFocus(state.focus + moves[key]); return; }
    if (key === "." || key === "pagedown") { e.preventDefault(); page(1); }
    else if (key === "," || key === "pageup") { e.preventDefault(); page(-1); }
    else if (key === "]") { e.preventDefault(); synset(1); }
    else if (key === "[") { e.preventDefault(); synset(-1); }
  });

  function start() {
    var params = new URLSearchParams(window.location.search);
    state.worker = (params.get("worker") || window.localStorage.getItem("imgnet-votes-worker") || "").trim();
    $("worker").value = state.worker;
    $("worker").addEventListener("change", function () {
      state.worker = $("worker").value.trim();
      window.localStorage.setItem("imgnet-votes-worker", state.worker);
      loadSynsets().then(function () { return loadGrid(); });
    });
    $("worker").addEventListener("keydown", function (e) { if (e.key === "Enter") { $("worker").blur(); setFocus(state.focus); } });
    $("synset").addEventListener("change", function () { state.wnid = $("synset").value; loadGrid(); });
    $("prev").addEventListener("click", function () { page(-1); });
    $("next").addEventListener("click", function () { page(1); });
    loadSynsets().then(function () { return loadGrid(); }).then(function () {
      document.body.setAttribute("data-ready", "1");
      if (!state.worker) { setStatus("Type your name to start."); $("worker").focus(); }
    }).catch(function (e) { setStatus("Could not load: " + e.message, true); });
  }

  start();
})();
