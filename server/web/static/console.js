// Dispatcher console: one live map of units and incidents, fed by the /console namespace;
// the incident queue with running timers, the alarm until acknowledged, the unit list.
(function () {
  const { t, word, said, summary } = window.fieldlinkText;
  const COLORS = { available: "#2e9d57", dispatched: "#f0a202", busy: "#2d7ff9", en_route: "#2d7ff9",
                   on_scene: "#8e44ad", out_of_service: "#4a4f57", offline: "#8a949e" };
  const STALE_S = 60;
  const $ = (id) => document.getElementById(id);
  const mapEl = document.getElementById("map");
  const map = L.map(mapEl).setView([35.41, 116.59], 13);
  map.attributionControl.setPrefix('<a href="https://leafletjs.com" translate="no">Leaflet</a>');
  for (const [button, key] of [["in", "zoom_in"], ["out", "zoom_out"]]) {  // worded by i18n.js
    const el = mapEl.querySelector(`.leaflet-control-zoom-${button}`);
    Object.assign(el.dataset, { tTitle: key, tLabel: key });
    el.title = t(key);
    el.setAttribute("aria-label", t(key));
  }
  if (mapEl.dataset.tileUrl) L.tileLayer(mapEl.dataset.tileUrl, { maxZoom: 19 }).addTo(map);
  L.control.scale({ metric: true, imperial: false }).addTo(map);
  window.fieldlinkMap = map;  // the cold-spot and replay layers (console_layers.js) draw on it
  fetch("/api/v1/grids").then((r) => r.json()).then((grids) => {
    L.geoJSON(grids, { interactive: false,
                       style: { className: "grid", color: "#5b6b7d", weight: 1.5, fill: false } }).addTo(map);
  });
  // response posts: where the 1/3/5-minute circles are held from
  fetch("/api/v1/posts").then((r) => r.json()).then((posts) => {
    L.geoJSON(posts, { pointToLayer: (f, at) => L.marker(at, {
      keyboard: false,
      icon: L.divIcon({ className: `post-icon t${f.properties.tier_min}`, html: `${f.properties.tier_min}′`,
                        iconSize: [22, 22], iconAnchor: [11, 11] }),
    }).bindTooltip(() => t("post")(f.properties.name || f.properties.id, f.properties.tier_min)) }).addTo(map);
  });
  const unitMarkers = new Map();
  const headings = new Map();  // an arrow beside each moving unit, pointing where it heads
  const units = new Map();
  window.fieldlinkUnits = units;  // the incident actions choose among them
  const UNIT_LIST_MAX = 200;
  const incidents = new Map();
  window.fieldlinkIncidents = incidents;  // the alerts name theirs
  const incidentMarkers = new Map();
  let fitted = false;
  let skew = 0;  // server time - browser time (a simulated day runs on its own clock)
  const nowS = () => Date.now() / 1000 + skew;

  function colorOf(u) {
    if (!u.online) return "#8a949e";
    return COLORS[u.status] || "#2e9d57";
  }

  function statusOf(u) { return u.online ? u.status : "offline"; }
  // a unit whose clock is off by 2 s or more says so: its presses count by its own time
  function clockNote(u) {
    return u.clock_offset_s != null && Math.abs(u.clock_offset_s) >= 2 ? ` · ${t("clock_off")(u.clock_offset_s)}` : "";
  }

  function showHeading(u, at, stale) {
    const moving = !stale && u.position.heading != null && (u.position.speed || 0) > 1;
    let arrow = headings.get(u.id);
    if (!moving) { if (arrow) { map.removeLayer(arrow); headings.delete(u.id); } return; }
    const icon = L.divIcon({ className: "heading-icon", iconSize: [28, 28], iconAnchor: [14, 14],
                             html: `<span style="transform: rotate(${u.position.heading}deg)">▲</span>` });
    if (!arrow) {
      arrow = L.marker(at, { icon, interactive: false, keyboard: false }).addTo(map);
      headings.set(u.id, arrow);
    } else {
      arrow.setLatLng(at).setIcon(icon);
    }
  }

  function renderUnits() {  // the list under the filters: grid, kind, status
    const want = { grid: $("f-grid").value, kind: $("f-kind").value, status: $("f-status").value };
    for (const [key, read] of [["grid", (u) => u.grid], ["kind", (u) => u.kind], ["status", statusOf]]) {
      const select = $(`f-${key}`);
      const known = new Set([...select.options].map((o) => o.value));
      [...new Set([...units.values()].map(read))].filter((v) => v && !known.has(v)).sort()
        .forEach((v) => select.add(new Option(v, v)));
      // the words follow the language; the values stay the ids
      [...select.options].slice(1).forEach((o) => {
        o.text = key === "grid" ? o.value : word(key === "kind" ? "kinds" : "statuses", o.value);
      });
    }
    const shown = [...units.values()].filter((u) => (!want.grid || u.grid === want.grid)
      && (!want.kind || u.kind === want.kind) && (!want.status || statusOf(u) === want.status))
      .sort((a, b) => a.id.localeCompare(b.id));
    $("unit-list").replaceChildren(...shown.slice(0, UNIT_LIST_MAX).map((u) => {
      const li = document.createElement("li");
      li.tabIndex = 0;
      li.innerHTML = "<i></i>";
      li.firstChild.className = statusOf(u);
      li.append(`${u.name || u.id} · ${word("kinds", u.kind)} · ${u.grid || "-"} · ${word("statuses", statusOf(u))} `,
                Object.assign(document.createElement("span"), { className: "since", title: t("in_status_since") }),
                clockNote(u));
      const since = li.querySelector(".since");
      since.dataset.since = u.status_since;
      since.textContent = clockText(Math.max(0, Math.floor(nowS() - u.status_since)));
      const go = () => { if (u.position) map.setView([u.position.lat, u.position.lon], 17); };
      li.addEventListener("click", go);
      li.addEventListener("keydown", (e) => { if (e.key === "Enter" && e.target === li) go(); });
      li.append(serviceButton(u));
      return li;
    }), ...(shown.length > UNIT_LIST_MAX ? [Object.assign(document.createElement("li"),
      { textContent: t("more")(shown.length - UNIT_LIST_MAX) })] : []));
  }
  ["f-grid", "f-kind", "f-status"].forEach((id) => $(id).addEventListener("change", renderUnits));

  // out of service (workshop, meal, court) and back: while out it is not recommended
  function serviceButton(u) {
    const out = u.status === "out_of_service";
    const button = Object.assign(document.createElement("button"), { type: "button", className: "small",
                                                                      textContent: t(out ? "back_in_service" : "take_out") });
    button.setAttribute("aria-label", t(out ? "back_in_service_of" : "take_out_of")(u.name || u.id));
    button.addEventListener("click", async (e) => {
      e.stopPropagation();
      try {
        await api("PUT", `/api/v1/units/${u.id}/status`, { status: out ? "available" : "out_of_service" });
      } catch (err) { button.textContent = t("not_done")(err.message); }
    });
    return button;
  }

  function showUnit(u) {
    units.set(u.id, { ...units.get(u.id), ...u });
    if (!u.position) return;
    const at = [u.position.lat, u.position.lon];
    const stale = nowS() - u.position.ts > STALE_S;
    let m = unitMarkers.get(u.id);
    const style = { radius: u.kind === "guard_post" ? 6 : 8, color: "#fff", weight: 2,
                    fillColor: colorOf(u), fillOpacity: stale ? 0.35 : 0.95 };
    if (!m) {
      m = L.circleMarker(at, style).addTo(map);
      unitMarkers.set(u.id, m);
    } else {
      m.setLatLng(at).setStyle(style);
    }
    m.bindTooltip(() => `${u.name || u.id} · ${word("kinds", u.kind)} · ${word("statuses", statusOf(units.get(u.id)))}${clockNote(units.get(u.id))}`);
    showHeading(u, at, stale);
  }

  function incidentIcon(i) {  // a priority-coloured badge; resolved ones fade
    return L.divIcon({ className: `incident-icon p${i.priority} ${i.state}`, html: `P${i.priority}`,
                       iconSize: [30, 30], iconAnchor: [15, 15] });
  }

  function select(id) {  // the incident panel (console_incident.js) shows it
    document.dispatchEvent(new CustomEvent("fieldlink:select", { detail: { id } }));
  }
  // the open incident's marker can be dragged to where it really is; its units hear of it
  let dragged = null;
  function draggable(id) {
    incidentMarkers.forEach((m, key) => { if (m.dragging) m.dragging[key === id ? "enable" : "disable"](); });
    dragged = id;
  }
  document.addEventListener("fieldlink:select", (e) => draggable(e.detail.id));
  document.addEventListener("fieldlink:hidden", () => draggable(null));
  async function moved(i, m) {
    const at = m.getLatLng();
    try {
      await api("PATCH", `/api/v1/incidents/${i.id}`, { location: { lat: at.lat, lon: at.lng, address: i.location.address } });
    } catch (err) {
      m.setLatLng([i.location.lat, i.location.lon]);
      $("action-status").textContent = t("not_done")(err.message);
    }
  }

  function showIncident(i) {
    incidents.set(i.id, i);
    if (i.location && i.location.lat != null) {
      let m = incidentMarkers.get(i.id);
      if (!m) {
        m = L.marker([i.location.lat, i.location.lon], { title: summary(i), icon: incidentIcon(i) }).addTo(map);
        m.on("click", () => select(i.id));
        m.on("dragend", () => moved(incidents.get(i.id), m));
        incidentMarkers.set(i.id, m);
        if (dragged === i.id) m.dragging.enable();
      } else {
        m.setIcon(incidentIcon(i)).setLatLng([i.location.lat, i.location.lon]);
      }
      if (i.state === "closed") { map.removeLayer(m); incidentMarkers.delete(i.id); }
    }
    renderIncidents();
  }

  // The queue: open incidents by priority, oldest first, each with its clock running since
  // the call; amber past 3 minutes and red past 5 without a unit on scene (the arrival
  // norm). Handled ones follow, most recent first.
  const WAITING = new Set(["new", "dispatched"]);
  const HANDLED = new Set(["resolved", "handed_over", "closed"]);
  // how late a step is: 0 in time, 1 amber, 2 red, by the server's thresholds (per category)
  let limits = { arrival: [180, 300], on_scene: {} };
  fetch("/api/v1/plans").then((r) => r.json()).then((p) => { limits = p.step_limits_s; renderIncidents(); });
  const level = (elapsed, [amber, red]) => (elapsed >= red ? 2 : elapsed >= amber ? 1 : 0);
  const onSceneLimits = (category) => limits.on_scene[category] || limits.on_scene["*"] || [Infinity, Infinity];
  function incidentLateness(i, now) {
    if (WAITING.has(i.state)) return level(now - i.created_at, limits.arrival);
    if (i.state === "on_scene" && i.on_scene_at) return level(now - i.on_scene_at, onSceneLimits(i.category));
    return 0;
  }
  // an order's step: accepted in half its window, on the way by the norm, on scene by its category
  function orderLateness(o, category, now) {
    if ((o.state === "sent" || o.state === "delivered") && o.ack_deadline) {
      const window = o.ack_deadline - o.sent_at;
      return level(now - o.sent_at, [window / 2, window]);
    }
    if (o.state === "accepted" || o.state === "en_route") return level(now - o.sent_at, limits.arrival);
    if (o.state === "on_scene" && o.on_scene_at) return level(now - o.on_scene_at, onSceneLimits(category));
    return 0;
  }
  const LATE = ["", " amber", " red"];
  const clockText = (s) => (s < 3600 ? `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`
    : `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`);
  window.fieldlinkTime = { nowS: () => nowS(), orderLateness, clockText, LATE };  // the orders' step clocks
  function renderIncidents() {
    const list = $("incidents");
    const focused = document.activeElement && document.activeElement.dataset.id;
    const shown = [...incidents.values()].filter((i) => i.state !== "closed");
    const now = nowS();
    // what is late first (red, then amber), then by priority and age
    const open = shown.filter((i) => !HANDLED.has(i.state))
      .map((i) => [incidentLateness(i, now), i])
      .sort(([la, a], [lb, b]) => lb - la || a.priority - b.priority || a.created_at - b.created_at)
      .map(([, i]) => i);
    const done = shown.filter((i) => HANDLED.has(i.state))
      .sort((a, b) => b.created_at - a.created_at).slice(0, 20);
    $("queue-count").textContent = `(${open.length})`;
    list.replaceChildren(...[...open, ...done].map((i) => {
      const li = document.createElement("li");
      li.className = `${i.state} p${i.priority}`;
      li.dataset.id = i.id;
      li.innerHTML = `<strong></strong> <span class="timer"></span><small></small>`;
      li.querySelector("strong").textContent = `P${i.priority} ${word("categories", i.category)} · ${word("states", i.state)}`;
      const timer = li.querySelector(".timer");
      timer.dataset.since = i.created_at;
      timer.dataset.handled = HANDLED.has(i.state) ? "yes" : "no";
      li.querySelector("small").textContent = [summary(i), i.location && i.location.address].filter(Boolean).join(" · ");
      li.tabIndex = 0;  // reachable and opened from the keyboard too
      const open = () => { if (i.location.lat != null) map.setView([i.location.lat, i.location.lon], 16); select(i.id); };
      li.addEventListener("click", open);
      li.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
      return li;
    }));
    tickTimers();
    // a re-render keeps the keyboard where it was
    if (focused) { const again = list.querySelector(`li[data-id="${focused}"]`); if (again) again.focus(); }
  }

  function tickTimers() {
    const now = nowS();
    let resort = false;
    document.querySelectorAll("#incidents li").forEach((li) => {
      const el = li.querySelector(".timer");
      const i = incidents.get(li.dataset.id);
      if (!el || !i) return;
      if (el.dataset.handled === "yes") { el.textContent = t("handled"); el.className = "timer"; return; }
      el.textContent = clockText(Math.max(0, Math.floor(now - Number(el.dataset.since))));
      const late = incidentLateness(i, now);
      if (el.dataset.late !== undefined && Number(el.dataset.late) !== late) resort = true;
      el.dataset.late = late;
      el.className = `timer${LATE[late]}`;
    });
    // every unit's time in its status
    document.querySelectorAll("#unit-list .since").forEach((el) => {
      el.textContent = clockText(Math.max(0, Math.floor(now - Number(el.dataset.since))));
    });
    if (resort) renderIncidents();  // a call turned amber or red: it moves up
  }

  function fitOnce() {
    if (fitted || !unitMarkers.size) return;
    map.fitBounds(L.featureGroup([...unitMarkers.values()]).getBounds().pad(0.2), { animate: false, maxZoom: 16 });
    fitted = true;
  }

  // a change made with the login's cookie carries the page's CSRF token
  async function api(method, path, body) {
    const csrf = document.querySelector('meta[name="csrf-token"]').content;
    const reply = await fetch(path, { method,
                                      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
                                      body: body ? JSON.stringify(body) : undefined });
    const answer = await reply.json();
    if (!reply.ok) throw new Error(said(answer) || `HTTP ${reply.status}`);
    return answer;
  }
  window.fieldlinkApi = api;  // the incident panel's changes go the same way

  const socket = io("/console");
  window.fieldlinkSocket = socket;  // the incident panel listens too
  const link = document.getElementById("link");
  function linkState(state) { link.dataset.t = state; link.textContent = t(state); link.className = state; }
  socket.on("connect", () => {
    linkState("online");
    socket.emit("sync", (snap) => {
      skew = snap.now - Date.now() / 1000;
      document.dispatchEvent(new CustomEvent("fieldlink:clock", { detail: { now: snap.now } }));
      snap.units.forEach(showUnit); snap.incidents.forEach(showIncident); fitOnce(); renderUnits();
      alarms.clear();
      (snap.alarms || []).forEach((a) => alarms.set(a.id, a));
      showAlarms();
      document.getElementById("counts").textContent = `(${snap.units.length})`;
    });
  });
  // Changes close together come as one `changes` event: [[event, data], ...], in order.
  socket.on("changes", (changes) => changes.forEach(([event, data]) => socket.listeners(event).forEach((fn) => fn(data))));
  socket.on("disconnect", () => linkState("offline"));
  socket.on("connect_error", () => linkState("offline"));
  socket.on("units", (changed) => { changed.forEach(showUnit); fitOnce(); renderUnits(); });
  socket.on("unit_removed", ({ id }) => {  // `fieldlink units remove`: out of the fleet
    [unitMarkers, headings].forEach((layers) => { layers.get(id)?.remove(); layers.delete(id); });
    units.delete(id);
    renderUnits();
  });
  socket.on("incident", (i) => { showIncident(i); showAlarms(); });
  // An alarm rings, flashing and beeping, on every console until a dispatcher acknowledges
  // it: the acknowledgement goes to the server (who and when, in the timeline) and silences
  // it everywhere at once; a reload, or a console that connects later, rings for those
  // still unacknowledged. One not acknowledged in time is escalated to the commanders.
  const alarms = new Map();  // the server's alarm id -> alarm
  const commander = ["commander", "admin"].includes($("who").title);
  let beeper = null;
  let audio = null;
  function beep() {
    try {
      audio = audio || new AudioContext();
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = 880;
      gain.gain.value = 0.2;
      tone.connect(gain).connect(audio.destination);
      tone.start();
      tone.stop(audio.currentTime + 0.35);
    } catch (err) { /* no audio device: the flashing box still says it */ }
  }
  // incidents raised with no place to send units to: the dispatcher places them on the map
  const unplaced = () => [...incidents.values()].filter((i) => i.location.lat == null && !HANDLED.has(i.state));
  function showAlarms() {
    const box = document.getElementById("alarm");
    const lost = unplaced();
    const ringing = alarms.size + lost.length;
    box.hidden = ringing === 0;
    box.dataset.sounding = ringing ? "yes" : "no";
    box.classList.toggle("escalated", [...alarms.values()].some((a) => a.escalated_at));
    // one line per call: a post's repeated presses are the same call, pressed again
    const calls = new Map();
    alarms.forEach((a) => calls.set(a.incident_id || `alarm-${a.id}`, a));
    document.getElementById("alarm-list").replaceChildren(...[...calls.values()].map((a) => {
      const li = document.createElement("li");
      li.textContent = t("alarm")(a.kind, a.unit_id);
      const notes = [a.presses > 1 ? t("presses")(a.presses) : "", a.location_source ? word("sources", a.location_source) : "",
                     a.escalated_at ? (commander ? t("escalated_to_you") : t("escalated")) : ""].filter(Boolean);
      if (notes.length) li.append(Object.assign(document.createElement("small"), { textContent: ` · ${notes.join(" · ")}` }));
      return li;
    }), ...lost.map((i) => {
      const li = document.createElement("li");
      li.className = "unplaced";
      const button = Object.assign(document.createElement("button"), { type: "button", textContent: t("place_it") });
      button.addEventListener("click", () => placeOnMap(i));
      li.append(`${t("no_place")(summary(i) || i.id)} `, button);
      return li;
    }));
    document.getElementById("alarm-ack").hidden = alarms.size === 0;
    if (ringing && !beeper) { beep(); beeper = setInterval(beep, 1500); }
    if (!ringing && beeper) { clearInterval(beeper); beeper = null; }
  }
  async function acknowledgeAlarms() {
    if (!alarms.size) return;
    try {
      await api("POST", "/api/v1/alarms/acknowledge", { ids: [...alarms.keys()] });
    } catch (err) {
      document.getElementById("alarm-status").textContent = t("not_acknowledged")(err.message);
    }
  }
  // the next click on the map places the incident there; the server then sends its plan
  let placing = null;
  function placeOnMap(incident) {
    placing = incident;
    mapEl.classList.add("placing");
    document.getElementById("alarm-status").textContent = t("click_to_place");
  }
  map.on("click", async (e) => {
    if (!placing) return;
    e.originalEvent.fieldlinkPlaced = true;  // this click is taken: no new incident here
    const incident = placing;
    placing = null;
    mapEl.classList.remove("placing");
    try {
      await api("PATCH", `/api/v1/incidents/${incident.id}`, { location: { lat: e.latlng.lat, lon: e.latlng.lng } });
      document.getElementById("alarm-status").textContent = "";
    } catch (err) {
      document.getElementById("alarm-status").textContent = t("not_placed")(err.message);
    }
  });
  document.getElementById("alarm-ack").addEventListener("click", acknowledgeAlarms);
  document.addEventListener("keydown", (e) => { if (e.key === "Enter" && alarms.size && !e.target.closest("input, select, textarea, button")) acknowledgeAlarms(); });
  socket.on("alarm", (a) => {
    alarms.set(a.id, a);
    showAlarms();
    document.getElementById("alarm-ack").focus();
  });
  socket.on("alarms_acknowledged", (done) => { done.alarms.forEach((a) => alarms.delete(a.id)); showAlarms(); });
  socket.on("alert", (alert) => {
    if (alert.kind === "alarm_unacknowledged" && alert.alarm) { alarms.set(alert.alarm.id, alert.alarm); showAlarms(); }
  });
  setInterval(tickTimers, 1000);
  // keys: N a new incident at the map's centre (console_incident.js), Escape closes panels
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea, .leaflet-popup") || e.ctrlKey || e.altKey || e.metaKey) return;
    if (e.key === "n" || e.key === "N") { e.preventDefault(); newIncidentHere(); }
  });
  function newIncidentHere() {
    document.dispatchEvent(new CustomEvent("fieldlink:new-incident", { detail: { at: map.getCenter() } }));
  }
  $("new-here").addEventListener("click", newIncidentHere);
  document.addEventListener("fieldlink:language", () => { renderUnits(); renderIncidents(); showAlarms(); });
  window.fieldlinkText.translate();
})();
