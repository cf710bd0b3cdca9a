// Console layers over the live map: the cold-spot overlay (/api/v1/coverage) and the replay
// of a unit's track for a period (/api/v1/units/{id}/track, GeoJSON with the fix times).
(function () {
  const { t, clock } = window.fieldlinkText;
  const map = window.fieldlinkMap;
  const $ = (id) => document.getElementById(id);
  const COLOURS = { green: "#2e9d57", blue: "#2d7ff9", red: "#d93025", black: "#111" };
  const COVERAGE_EVERY_MS = 30000;

  // -- cold spots ------------------------------------------------------------------------
  let cells = null;
  let coverageTimer = null;

  async function showCoverage() {
    const status = $("coverage-status");
    try {
      const body = await window.fieldlinkApi("GET", "/api/v1/coverage");  // its refusal worded
      if (cells) map.removeLayer(cells);
      cells = L.geoJSON(body, {
        interactive: false,
        style: (f) => ({ className: `cell ${f.properties.colour}`, stroke: false,
                         fillColor: COLOURS[f.properties.colour], fillOpacity: 0.35 }),
      }).addTo(map);
      cells.bringToBack();
      const c = body.counts;
      status.textContent = t("cells")(c, body.cell_m, clock(Date.now() / 1000));
    } catch (err) {
      status.textContent = t("no_coverage")(err.message);
    }
  }

  $("coverage-on").addEventListener("change", (e) => {
    clearInterval(coverageTimer);
    if (e.target.checked) {
      showCoverage();
      coverageTimer = setInterval(showCoverage, COVERAGE_EVERY_MS);
    } else {
      if (cells) map.removeLayer(cells);
      cells = null;
      $("coverage-status").textContent = "";
    }
  });

  // -- replay ----------------------------------------------------------------------------
  const track = { line: null, marker: null, times: [], points: [], timer: null };

  function localInput(date) {  // a Date as a datetime-local value in the browser's zone
    const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return shifted.toISOString().slice(0, 16);
  }
  window.fieldlinkLocalInput = localInput;  // the patrol report's shift too

  async function fillUnits() {
    const units = await (await fetch("/api/v1/units")).json();
    $("replay-unit").replaceChildren(...units.map((u) => new Option(`${u.name || u.id} (${u.id})`, u.id)));
  }

  function clearTrack() {
    stop();
    if (track.line) map.removeLayer(track.line);
    if (track.marker) map.removeLayer(track.marker);
    track.line = track.marker = null;
  }

  function showAt(i) {
    track.marker.setLatLng(track.points[i]);
    $("replay-pos").value = i;
    $("replay-time").textContent = clock(track.times[i], true);
  }

  function playButton(key) {  // data-t: a language switch keeps what it says
    $("replay-play").dataset.t = key;
    $("replay-play").textContent = t(key);
  }

  function stop() {
    clearInterval(track.timer);
    track.timer = null;
    playButton("play");
  }

  function play() {
    if (track.timer) { stop(); return; }
    const tickMs = 100;
    playButton("pause");
    let i = Number($("replay-pos").value);
    if (i >= track.times.length - 1) i = 0;
    let at = track.times[i];
    track.timer = setInterval(() => {
      at += Number($("replay-speed").value) * tickMs / 1000;
      while (i < track.times.length - 1 && track.times[i + 1] <= at) i += 1;
      showAt(i);
      if (i >= track.times.length - 1) stop();
    }, tickMs);
  }

  $("replay-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const unit = $("replay-unit").value;
    const since = new Date($("replay-from").value).getTime() / 1000;
    const until = new Date($("replay-to").value).getTime() / 1000;
    const status = $("replay-status");
    if (!(until > since)) { status.textContent = t("to_after_from"); return; }
    const query = `since=${since}&until=${until}`;
    const base = `/api/v1/units/${encodeURIComponent(unit)}/track`;
    clearTrack();
    const reply = await fetch(`${base}?${query}`);
    if (!reply.ok) { status.textContent = t("no_track")(reply.status); return; }
    const feature = (await reply.json()).features[0];
    track.times = feature.properties.times;
    track.points = feature.geometry.coordinates.map(([lon, lat]) => [lat, lon]);
    $("replay-player").hidden = track.points.length === 0;
    if (!track.points.length) { status.textContent = t("no_fixes")(unit); return; }
    track.line = L.polyline(track.points, { className: "track", color: "#f0a202", weight: 4 }).addTo(map);
    track.marker = L.circleMarker(track.points[0], { className: "track-head", radius: 9, color: "#fff",
                                                      weight: 3, fillColor: "#f0a202", fillOpacity: 1 }).addTo(map);
    map.fitBounds(track.line.getBounds().pad(0.2), { animate: false, maxZoom: 17 });
    $("replay-pos").max = track.points.length - 1;
    $("replay-gpx").href = `${base}.gpx?${query}`;
    $("replay-geojson").href = `${base}?${query}`;
    showAt(0);
    status.textContent = t("fixes")(track.points.length, unit);
  });

  // a unit's way on one call, asked from the incident panel: the order's time, a little either side
  document.addEventListener("fieldlink:replay", (e) => {
    const { unit, since, until } = e.detail;
    if (![...$("replay-unit").options].some((o) => o.value === unit)) $("replay-unit").add(new Option(unit, unit));
    $("replay-unit").value = unit;
    $("replay-from").value = localInput(new Date(since * 1000));
    $("replay-to").value = localInput(new Date(until * 1000 + 60 * 1000));  // whole minutes
    $("replay-form").requestSubmit();
    $("replay").scrollIntoView({ block: "nearest" });
  });

  $("replay-pos").addEventListener("input", (e) => { stop(); showAt(Number(e.target.value)); });
  $("replay-play").addEventListener("click", play);

  function lastHour(nowMs) {  // to the minute after now: the inputs hold whole minutes
    $("replay-to").value = localInput(new Date(nowMs + 60 * 1000));
    $("replay-from").value = localInput(new Date(nowMs - 3600 * 1000));
  }
  lastHour(Date.now());
  // once the server says its time (a simulated day has its own), the last hour by it
  document.addEventListener("fieldlink:clock", (e) => lastHour(e.detail.now * 1000), { once: true });
  fillUnits();
})();
