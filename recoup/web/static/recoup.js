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

  // The worklist from the keyboard: j / k move, Enter opens, n opens the next account (on the
  // worklist and on an account page). Keys typed into a field are left alone.
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    var rows = Array.from(document.querySelectorAll("#worklist tbody tr[data-href]"));
    var current = rows.findIndex(function (r) { return r.classList.contains("selected"); });
    if ((event.key === "j" || event.key === "k") && rows.length) {
      var next = Math.min(rows.length - 1, Math.max(0, current + (event.key === "j" ? 1 : -1)));
      rows.forEach(function (r) { r.classList.remove("selected"); });
      rows[next].classList.add("selected");
      rows[next].scrollIntoView({ block: "nearest" });
      event.preventDefault();
    } else if (event.key === "Enter" && rows.length && current >= 0) {
      window.location.href = rows[current].dataset.href;
      event.preventDefault();
    } else if (event.key === "n") {
      var link = document.getElementById("next-account");
      if (link) { window.location.href = link.getAttribute("href"); event.preventDefault(); }
    }
  });
  document.addEventListener("click", function (event) {
    var row = event.target.closest && event.target.closest("#worklist tbody tr[data-href]");
    if (row && !event.target.closest("a")) window.location.href = row.dataset.href;
  });

  document.addEventListener("DOMContentLoaded", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });
})();
