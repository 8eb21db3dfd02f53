/* kerasviz explorer: sorting, search and keys, shared by every gallery page. Static, no network access.
   The site's layers and units come from site.js (window.KV_SITE), written next to this file. */
(function () {
  "use strict";
  var body = document.body;
  var root = body.getAttribute("data-root") || "";
  var here = body.getAttribute("data-layer");
  var site = window.KV_SITE || {layers: []};
  var search = document.getElementById("search");
  var message = document.getElementById("search-message");

  function unitFile(unit) {
    var s = String(unit);
    while (s.length < 5) s = "0" + s;
    return "f" + s + ".html";
  }

  function findLayer(name) {
    var layers = site.layers, low = name.toLowerCase(), i;
    for (i = 0; i < layers.length; i++) if (layers[i].name === name) return layers[i];
    for (i = 0; i < layers.length; i++) {
      if (layers[i].name.toLowerCase() === low || layers[i].slug.toLowerCase() === low) return layers[i];
    }
    return null;
  }

  /* "12" (on a layer or unit page) or "layer:12" (anywhere): the unit page's address, or why there is none. */
  function resolve(query) {
    var cut = query.lastIndexOf(":"), name = here, unit = query;
    if (cut >= 0) {
      name = query.slice(0, cut).trim();
      unit = query.slice(cut + 1).trim();
    }
    if (!/^\d+$/.test(unit)) return {error: "Type a unit number, or layer:unit."};
    if (!name) return {error: "Type layer:unit, for example " + (site.layers.length ? site.layers[0].name : "conv1") + ":0."};
    var layer = findLayer(name);
    if (!layer) return {error: "No layer " + name + " in this gallery."};
    var n = parseInt(unit, 10);
    if ((layer.pending || []).indexOf(n) >= 0) return {error: "Unit " + n + " of " + layer.name + " is still being computed: reload later."};
    if (layer.units.indexOf(n) < 0) return {error: "Unit " + n + " of " + layer.name + " is not in this gallery."};
    return {href: root + layer.slug + "/" + unitFile(n)};
  }

  if (search) {
    search.form.addEventListener("submit", function (event) {
      event.preventDefault();
      var found = resolve(search.value.trim());
      if (found.href) window.location.href = found.href;
      else if (message) message.textContent = found.error;
    });
    search.addEventListener("input", function () { if (message) message.textContent = ""; });
  }

  var grid = document.querySelector(".grid[data-sortable]");
  var buttons = Array.prototype.slice.call(document.querySelectorAll("button[data-sort]"));
  function score(figure) {
    var s = parseFloat(figure.getAttribute("data-score"));
    return isNaN(s) ? -Infinity : s;
  }
  function sortGrid(key) {
    var figures = Array.prototype.slice.call(grid.children);
    figures.sort(function (a, b) {
      if (key === "score") {
        var d = score(b) - score(a);
        if (d) return d;
      }
      return parseInt(a.getAttribute("data-index"), 10) - parseInt(b.getAttribute("data-index"), 10);
    });
    figures.forEach(function (f) { grid.appendChild(f); });
    buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.getAttribute("data-sort") === key)); });
  }
  if (grid) {
    buttons.forEach(function (b) {
      b.addEventListener("click", function () { sortGrid(b.getAttribute("data-sort")); });
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    var t = event.target;
    var typing = t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
    if (typing) {
      if (event.key === "Escape") t.blur();
      return;
    }
    if (event.key === "/" && search) {
      event.preventDefault();
      search.focus();
      search.select();
      return;
    }
    var rel = {ArrowLeft: "prev", ArrowRight: "next", ArrowUp: "up"}[event.key];
    if (!rel || !body.classList.contains("unit")) return;
    var link = document.querySelector('a[rel="' + rel + '"]');
    if (link) {
      event.preventDefault();
      window.location.href = link.href;
    }
  });
})();
