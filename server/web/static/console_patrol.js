// The console's patrol report for a shift: each patrolling unit's kilometres, hours moving and
// stopped, share of time in its home grid and long stops, each home grid's units added up, and
// the same as CSV; a unit's line replays its track for the shift.
(function () {
  const { t } = window.fieldlinkText;
  const api = window.fieldlinkApi;
  const $ = (id) => document.getElementById(id);
  const hours = (s) => (s / 3600).toFixed(1);
  let shown = null;  // the last report, re-worded when the language changes

  const localInput = window.fieldlinkLocalInput;
  const now = Date.now();
  $("p-from").value = localInput(new Date(now - 12 * 3600 * 1000));  // a 12-hour shift
  $("p-to").value = localInput(new Date(now + 60 * 1000));

  function table(id, head, rows) {
    const cells = (tag, values) => {
      const tr = document.createElement("tr");
      tr.append(...values.map((v) => Object.assign(document.createElement(tag), { textContent: v })));
      return tr;
    };
    $(id).querySelector("thead").replaceChildren(cells("th", head));
    $(id).querySelector("tbody").replaceChildren(...rows.map(([values, onClick]) => {
      const tr = cells("td", values);
      if (onClick) {
        tr.tabIndex = 0;
        tr.addEventListener("click", onClick);
        tr.addEventListener("keydown", (e) => { if (e.key === "Enter") onClick(); });
      }
      return tr;
    }));
  }
  const share = (u) => (u.in_home_grid_share == null ? "-" : `${Math.round(u.in_home_grid_share * 100)} %`);
  function render() {
    if (!shown) return;
    const { report } = shown;
    table("patrol-grids", [t("p_grid"), t("p_count"), t("p_km"), t("p_moving"), t("p_stopped"), t("p_in_grid"), t("p_stops")],
          report.grids.map((g) => [[g.grid, g.units, g.km.toFixed(1), hours(g.moving_s), hours(g.stationary_s),
                                    hours(g.in_home_grid_s), g.long_stops]]));
    table("patrol-units", [t("p_unit"), t("p_grid"), t("p_km"), t("p_moving"), t("p_stopped"), t("p_in_grid"), t("p_stops")],
          report.units.map((u) => [[u.unit_id, u.home_grid || "-", u.km.toFixed(1), hours(u.moving_s),
                                    hours(u.stationary_s), share(u), u.stops.length],
                                   () => document.dispatchEvent(new CustomEvent("fieldlink:replay",
                                     { detail: { unit: u.unit_id, since: report.since, until: report.until } }))]));
    $("patrol-status").textContent = t("p_done")(report.units.length);
  }

  $("patrol-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const since = new Date($("p-from").value).getTime() / 1000;
    const until = new Date($("p-to").value).getTime() / 1000;
    if (!(until > since)) { $("patrol-status").textContent = t("to_after_from"); return; }
    const query = `since=${since}&until=${until}`;
    $("patrol-status").textContent = t("p_loading");
    try {
      shown = { report: await api("GET", `/api/v1/patrol?${query}`) };
      $("patrol-csv").href = `/api/v1/patrol.csv?${query}`;
      $("patrol-report").hidden = false;
      render();
    } catch (err) {
      $("patrol-status").textContent = t("p_not_loaded")(err.message);
    }
  });
  document.addEventListener("fieldlink:language", render);
})();
