"""The page of :mod:`histoexpr.plot.viewer`: an OpenSeadragon deep-zoom viewer of the slide
with one prediction layer per gene, a gene picker, an opacity slider, a colour bar and the
values of the tile under the pointer. All tile logic is OpenSeadragon's; the page only
picks the layer, positions it in the slide's viewport and looks a hovered tile up in
``data.js`` (written beside it)."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>histoexpr viewer: __TITLE__</title>
<style>
  html, body { margin: 0; height: 100%; font: 14px system-ui, sans-serif; }
  body { display: flex; flex-direction: column; }
  #bar { display: flex; gap: 14px; align-items: center; padding: 6px 10px;
         background: #222; color: #eee; flex-wrap: wrap; }
  #osd { flex: 1; min-height: 0; position: relative; background: #111; }
  #cbar { width: 160px; height: 12px; border: 1px solid #888; }
  #hover { min-width: 220px; font-family: monospace; }
  label { display: flex; gap: 6px; align-items: center; }
</style>
</head>
<body>
<div id="bar">
  <strong>__TITLE__</strong>
  <label>gene <select id="gene"></select></label>
  <label>opacity <input id="opacity" type="range" min="0" max="1" step="0.05" value="0.6">
  </label>
  <span id="lo"></span><div id="cbar"></div><span id="hi"></span>
  <span id="hover">hover a tile</span>
</div>
<div id="osd"></div>
<script src="openseadragon/openseadragon.min.js"></script>
<script src="data.js"></script>
<script>
(function () {
  var D = window.HISTOEXPR;
  var viewer = OpenSeadragon({
    id: "osd", prefixUrl: "openseadragon/images/", tileSources: D.dzi,
    showNavigator: true, crossOriginPolicy: false,
    drawer: "canvas", imageSmoothingEnabled: false  // tiles as squares, not blurred
  });
  document.getElementById("hover").textContent = "hover a " + (D.unit || "tile");
  var select = document.getElementById("gene");
  var opacity = document.getElementById("opacity");
  D.genes.forEach(function (g) {
    var o = document.createElement("option"); o.value = g; o.textContent = g;
    select.appendChild(o);
  });
  document.getElementById("cbar").style.background =
    "linear-gradient(to right, " + D.colours.join(", ") + ")";
  var layer = null, current = null;
  function show(gene) {
    var i = D.genes.indexOf(gene);
    if (i < 0) { i = 0; gene = D.genes[0]; }
    current = gene; select.value = gene;
    document.getElementById("lo").textContent = D.range[gene][0].toFixed(2);
    document.getElementById("hi").textContent = D.range[gene][1].toFixed(2);
    if (layer) { viewer.world.removeItem(layer); layer = null; }
    viewer.addSimpleImage({
      url: D.layers[gene], x: D.grid.x0 / D.width, y: D.grid.y0 / D.width,
      width: D.grid.cols * D.grid.step / D.width, opacity: parseFloat(opacity.value),
      success: function (e) { layer = e.item; document.body.dataset.gene = gene; }
    });
  }
  window.histoexprShow = show;
  select.addEventListener("change", function () { show(select.value); });
  opacity.addEventListener("input", function () {
    if (layer) layer.setOpacity(parseFloat(opacity.value));
  });
  new OpenSeadragon.MouseTracker({
    element: viewer.element,
    moveHandler: function (e) {
      var vp = viewer.viewport.pointFromPixel(e.position);
      var px = viewer.viewport.viewportToImageCoordinates(vp);
      var c = Math.floor((px.x - D.grid.x0) / D.grid.step);
      var r = Math.floor((px.y - D.grid.y0) / D.grid.step);
      var out = document.getElementById("hover");
      var k = (r >= 0 && c >= 0 && r < D.grid.rows && c < D.grid.cols) ?
        D.grid.index[r * D.grid.cols + c] : -1;
      var unit = D.unit || "tile";
      if (k < 0) { out.textContent = "no " + unit + " here"; return; }
      var txt = unit + " (" + D.tiles[k][0] + ", " + D.tiles[k][1] + ")";
      var v = D.values[current][k];
      txt += " " + current + " = " + (v === null ? "n/a" : v.toFixed(3));
      out.textContent = txt;
    }
  });
  viewer.addHandler("open", function () {
    var want = decodeURIComponent((location.hash.match(/gene=([^&]+)/) || [])[1] || "");
    show(want || D.genes[0]);
  });
})();
</script>
</body>
</html>
"""
