// Recoup page behaviour. Kept small: pages are server-rendered and work without it.
(function () {
  "use strict";

  // An empty filter field means "any": leave it out of the request, so the address HTMX pushes
  // stays short and readable.
  document.addEventListener("htmx:configRequest", function (event) {
    var params = event.detail.parameters;
    if (params instanceof FormData) {
      Array.from(params.keys()).forEach(function (key) {
        if (params.get(key) === "") params.delete(key);
      });
    } else {
      Object.keys(params).forEach(function (key) {
        if (params[key] === "") delete params[key];
      });
    }
  });

  // Charts: a <figure data-chart="buckets"> carries its data as JSON; amounts arrive as exact
  // decimal strings and become numbers only here, for drawing.
  function drawCharts(root) {
    if (!window.echarts) return;
    root.querySelectorAll('[data-chart="buckets"]').forEach(function (figure) {
      if (figure.dataset.drawn) return;
      var data = JSON.parse(figure.querySelector('script[type="application/json"]').textContent);
      var canvas = figure.querySelector(".chart-canvas");
      var money = new Intl.NumberFormat(data.lang, {
        style: "currency", currency: data.currency, notation: "compact", maximumFractionDigits: 1
      });
      var full = new Intl.NumberFormat(data.lang, { style: "currency", currency: data.currency });
      var chart = window.echarts.init(canvas, null, { renderer: "svg" });
      chart.setOption({
        animation: false,
        color: ["#c2410c", "#2563eb"],
        grid: { left: 8, right: 8, top: 36, bottom: 8, containLabel: true },
        legend: { top: 0, data: data.series.map(function (s) { return s.name; }) },
        tooltip: {
          trigger: "axis", axisPointer: { type: "shadow" },
          valueFormatter: function (v) { return full.format(v); }
        },
        xAxis: { type: "category", data: data.buckets },
        yAxis: { type: "value", axisLabel: { formatter: function (v) { return money.format(v); } } },
        series: data.series.map(function (s) {
          return { name: s.name, type: "bar", data: s.values.map(Number), barMaxWidth: 28 };
        })
      });
      window.addEventListener("resize", function () { chart.resize(); });
      figure.dataset.drawn = "1";
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });
})();
