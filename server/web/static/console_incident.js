// The console's incident panel: create an incident by clicking the map, see who would arrive
// first (the recommendation, with ETAs), dispatch with one click, follow the timeline live;
// its other actions are console_actions.js's.
(function () {
  const { t, word, said, summary, clock } = window.fieldlinkText;
  const map = window.fieldlinkMap;
  const socket = window.fieldlinkSocket;
  const $ = (id) => document.getElementById(id);
  let selected = null;
  let categories = ["urgent", "help", "dispute", "traffic", "report", "other"];
  fetch("/api/v1/plans").then((r) => r.json()).then((p) => { categories = p.categories; });

  const api = window.fieldlinkApi;

  function item(text, ...children) {
    const li = document.createElement("li");
    li.append(text, ...children);
    return li;
  }

  // -- creating: a click on the map (or N, at its centre) opens a small form there -------------
  function newIncident(at) {
    const form = document.createElement("form");
    form.className = "new-incident";
    form.innerHTML = `<strong></strong>
      <select name="category"></select>
      <select name="priority"><option value="1">P1</option><option value="2" selected>P2</option>
        <option value="3">P3</option><option value="4">P4</option></select>
      <input name="summary">
      <input name="address">
      <button type="submit"></button>`;
    form.querySelector("strong").textContent = t("new_incident");
    form.category.setAttribute("aria-label", t("category"));
    form.priority.setAttribute("aria-label", t("priority"));
    form.summary.placeholder = t("summary_hint");
    form.address.placeholder = t("address");
    for (const name of ["summary", "address"]) form[name].setAttribute("aria-label", t(name));
    form.querySelector("button").textContent = t("create");
    form.category.replaceChildren(...categories.map((c) => new Option(word("categories", c), c)));
    const popup = L.popup().setLatLng(at).setContent(form).openOn(map);
    form.category.focus();
    form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") map.closePopup(popup); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const incident = await api("POST", "/api/v1/incidents", {
          category: form.category.value, priority: Number(form.priority.value), summary: form.summary.value,
          location: { lat: at.lat, lon: at.lng, address: form.address.value },
        });
        map.closePopup(popup);
        show(incident.id);
      } catch (err) {
        form.querySelector("button").textContent = t("not_created")(err.message);
      }
    });
  }
  map.on("click", (e) => { if (!e.originalEvent.fieldlinkPlaced) newIncident(e.latlng); });
  document.addEventListener("fieldlink:new-incident", (e) => newIncident(e.detail.at));

  // -- the panel ----------------------------------------------------------------------------
  async function show(id) {
    selected = id;
    $("incident").hidden = false;
    const [incident, recs, timeline] = await Promise.all([
      api("GET", `/api/v1/incidents/${id}`),
      api("GET", `/api/v1/incidents/${id}/recommendations?limit=5`).catch(() => ({ recommendations: [] })),
      api("GET", `/api/v1/incidents/${id}/timeline`),
    ]);
    if (selected !== id) return;  // another one was chosen meanwhile
    const source = incident.location_source && (word("sources", incident.location_source)
      + (incident.location_age_s > 60 ? ` (${t("minutes_old")(Math.round(incident.location_age_s / 60))})` : ""));
    $("incident-head").textContent = [`P${incident.priority} ${word("categories", incident.category)}`,
      word("states", incident.state), summary(incident), incident.location.address, source,
      incident.presses > 1 ? t("presses")(incident.presses) : ""].filter(Boolean).join(" · ");
    $("recommendations").replaceChildren(...recs.recommendations.filter((r) => r.recommendable).map((r) => {
      const send = document.createElement("button");
      send.textContent = t("dispatch")(r.unit_id);
      send.addEventListener("click", async () => {
        send.disabled = true;
        try { await api("POST", `/api/v1/incidents/${id}/orders`, { unit_ids: [r.unit_id] }); }
        catch (err) { send.textContent = err.message; }
        show(id);
      });
      return item(t("eta")(r.name || r.unit_id, Math.round(r.eta_s / 6) / 10, (r.distance_m / 1000).toFixed(1)), send);
    }));
    showCallOut(incident.orders.filter((o) => o.call_out));
    $("timeline").replaceChildren(...timeline.map((ev) =>
      item([clock(ev.ts), word("events", ev.kind), ev.unit_id, details(ev), word("actors", ev.actor)]
        .filter(Boolean).join(" · "))));
    // its actions and its orders' (console_actions.js)
    document.dispatchEvent(new CustomEvent("fieldlink:shown", { detail: incident }));
  }
  // what a dispatcher wrote with an event: the note, the reason, the disposition
  function details(ev) {
    const d = ev.data || {};
    const handover = d.handover ? [d.handover.to_unit || d.handover.to_department, d.handover.reason] : [];
    // a reason the server gave comes with its code (an officer's or a dispatcher's is their own)
    const reason = d.reason_code ? said({ reason: d.reason_code, params: d.reason_params, message: d.reason }) : d.reason;
    return [d.text, d.note, d.disposition, d.outcome && word("outcomes", d.outcome), reason, ...handover,
            d.into, d.merged]
      .filter(Boolean).join(" · ");
  }

  // -- a call-out: one task to everyone on foot nearby, each answering for themselves ----------
  const ACCEPTED = new Set(["accepted", "en_route", "on_scene", "cleared"]);
  function showCallOut(tasks) {
    const count = (test) => tasks.filter((o) => test(o.state)).length;
    $("call-out-count").textContent = tasks.length ? t("call_out_count")(tasks.length,
      count((s) => ACCEPTED.has(s)), count((s) => s === "declined"),
      count((s) => s === "sent" || s === "delivered")) : "";
  }
  $("call-out").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const id = selected;
    try {
      await api("POST", `/api/v1/incidents/${id}/callout`, { radius_m: Number($("call-out-radius").value) });
      show(id);
    } catch (err) { $("call-out-count").textContent = err.message; }
  });

  document.addEventListener("fieldlink:select", (e) => show(e.detail.id));
  function closePanel() {
    selected = null;
    $("incident").hidden = true;
    document.dispatchEvent(new CustomEvent("fieldlink:hidden"));
  }
  $("incident-close").addEventListener("click", closePanel);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && selected) closePanel(); });
  document.addEventListener("fieldlink:language", () => { if (selected) show(selected); });
  // what the units answer shows at once in the panel of the incident it concerns
  socket.on("order", (o) => { if (o.incident_id === selected) show(selected); });
  socket.on("incident", (i) => { if (i.id === selected) show(selected); });
  socket.on("alerts_acknowledged", (d) => { if (d.alerts.some((a) => a.incident_id === selected)) show(selected); });
})();
