// Response figures: tiles, the arrival-time histogram with the 5-minute line, the daily trend.
(function () {
  const FIVE_MIN_S = 300;
  const charts = {};
  const $ = (id) => document.getElementById(id);
  const pct = (share) => (share.rate == null ? "–" : `${Math.round(share.rate * 100)} %`);
  const mins = (s) => (s == null ? "–" : `${(s / 60).toFixed(1)} min`);

  // draws a dashed vertical line at the 5-minute bin: the target every centre reports against
  const targetLine = {
    id: "targetLine",
    afterDraw(chart, _args, options) {
      if (options.index == null) return;
      const x = chart.scales.x.getPixelForValue(options.index) - chart.scales.x.width / chart.data.labels.length / 2;
      const { top, bottom } = chart.chartArea;
      const ctx = chart.ctx;
      ctx.save();
      ctx.strokeStyle = "#c0392b";
      ctx.setLineDash([6, 4]);
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, bottom); ctx.stroke();
      ctx.fillStyle = "#c0392b";
      ctx.fillText("5 min", x + 4, top + 12);
      ctx.restore();
    },
  };

  function draw(id, config) {
    if (charts[id]) charts[id].destroy();
    charts[id] = new Chart($(id), config);
  }

  function show(k) {
    const all = k.all;
    $("incidents").textContent = all.incidents;
    $("arrival").textContent = mins(all.dispatch_to_arrival.median_s);
    $("p90").textContent = mins(all.dispatch_to_arrival.p90_s);
    $("within5").textContent = pct(all.arrived_within["5min"]);
    $("first").textContent = pct(all.first_response_rate);
    $("onscene").textContent = pct(all.on_scene_resolution_rate);
    $("closure").textContent = pct(all.same_day_closure_rate);
    $("followup").textContent = pct(all.followups_done);

    const h = k.arrival_histogram;
    const labels = h.counts.map((_, i) => `${(i * h.bin_s) / 60}`);
    labels.push(`>${(h.counts.length * h.bin_s) / 60}`);
    const counts = [...h.counts, h.over];
    draw("histogram", {
      type: "bar",
      data: { labels, datasets: [{ label: "警情 incidents", data: counts,
        backgroundColor: labels.map((_, i) => (i * h.bin_s < FIVE_MIN_S ? "#2e9d57" : "#c0392b")) }] },
      options: { animation: false, plugins: { legend: { display: false }, targetLine: { index: FIVE_MIN_S / h.bin_s } },
                 scales: { x: { title: { display: true, text: "分钟 minutes" } }, y: { beginAtZero: true, ticks: { precision: 0 } } } },
      plugins: [targetLine],
    });
    draw("trend", {
      type: "line",
      data: { labels: k.daily.map((d) => d.date), datasets: [
        { label: "到达中位数 median arrival (min)", data: k.daily.map((d) => (d.median_arrival_s == null ? null : d.median_arrival_s / 60)), borderColor: "#2d7ff9", yAxisID: "y" },
        { label: "警情 incidents", data: k.daily.map((d) => d.incidents), borderColor: "#8a949e", yAxisID: "n" },
      ] },
      options: { animation: false, scales: { y: { beginAtZero: true, position: "left" }, n: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false } } } },
    });
  }

  async function load() {
    $("status").textContent = "…";
    try {
      // the server counts the days in the command centre's zone and by its own clock
      const reply = await fetch(`/api/v1/kpis?days=${Number($("period").value)}`);
      if (!reply.ok) throw new Error(`${reply.status}`);
      show(await reply.json());
      $("status").textContent = `更新 updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      $("status").textContent = `无法加载 cannot load the figures (${err.message}); retrying`;
    }
  }

  $("period").addEventListener("change", load);
  load();
  setInterval(load, 60000);
})();
