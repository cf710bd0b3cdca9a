// Response figures: tiles, the arrival-time histogram with the 5-minute line, the daily trend.
(function () {
  const TEXT = {
    zh: {
      title: "勤务指标", period: "时段", today: "今天", days7: "近 7 天", days30: "近 30 天",
      figures: "指标", incidents: "警情", median: "到达中位数", p90: "到达 P90", within5: "5 分钟到达率",
      first: "先期处置率", onscene: "现场处置率", closure: "当日办结率", followup: "回访率",
      histogram: "到达时间分布", histogram_label: "到达时间分布，含 5 分钟线", trend: "每日趋势",
      trend_label: "每日到达中位数与警情数", minutes: "分钟", min: "分钟", median_min: "到达中位数（分钟）",
      updated: (at) => `更新于 ${at}`, not_loaded: (m) => `无法载入指标（${m}），稍后重试`,
    },
    en: {
      title: "Response figures", period: "Period", today: "Today", days7: "Last 7 days", days30: "Last 30 days",
      figures: "Figures", incidents: "Incidents", median: "Median arrival", p90: "P90 arrival",
      within5: "Within 5 min", first: "First response", onscene: "Resolved on scene",
      closure: "Same-day closure", followup: "Follow-ups", histogram: "Dispatch to arrival",
      histogram_label: "arrival time histogram with the 5-minute line", trend: "Daily trend",
      trend_label: "daily median arrival and incidents", minutes: "minutes", min: "min",
      median_min: "median arrival (min)",
      updated: (at) => `updated ${at}`, not_loaded: (m) => `cannot load the figures (${m}); retrying`,
    },
  };
  let last = null;  // the figures shown, drawn again in the other language
  const language = window.fieldlinkLanguage(TEXT, () => { document.title = `fieldlink · ${t("title")}`; if (last) show(last); });
  const t = language.t;
  const FIVE_MIN_S = 300;
  const charts = {};
  const $ = (id) => document.getElementById(id);
  const pct = (share) => (share.rate == null ? "–" : `${Math.round(share.rate * 100)} %`);
  const mins = (s) => (s == null ? "–" : `${(s / 60).toFixed(1)} ${t("min")}`);

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
    last = k;
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
      data: { labels, datasets: [{ label: t("incidents"), data: counts,
        backgroundColor: labels.map((_, i) => (i * h.bin_s < FIVE_MIN_S ? "#2e9d57" : "#c0392b")) }] },
      options: { animation: false, plugins: { legend: { display: false }, targetLine: { index: FIVE_MIN_S / h.bin_s } },
                 scales: { x: { title: { display: true, text: t("minutes") } }, y: { beginAtZero: true, ticks: { precision: 0 } } } },
      plugins: [targetLine],
    });
    draw("trend", {
      type: "line",
      data: { labels: k.daily.map((d) => d.date), datasets: [
        { label: t("median_min"), data: k.daily.map((d) => (d.median_arrival_s == null ? null : d.median_arrival_s / 60)), borderColor: "#2d7ff9", yAxisID: "y" },
        { label: t("incidents"), data: k.daily.map((d) => d.incidents), borderColor: "#8a949e", yAxisID: "n" },
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
      $("status").textContent = t("updated")(language.clock(Date.now() / 1000));
    } catch (err) {
      $("status").textContent = t("not_loaded")(err.message);
    }
  }

  $("period").addEventListener("change", load);
  language.translate();
  load();
  setInterval(load, 60000);
})();
