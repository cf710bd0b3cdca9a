// What a dispatcher does with the incident in the panel: edit it, note, send the plan again,
// send any unit (diverting a busy one after asking), cancel, replace or reassign an order,
// resolve, hand over, close, record the follow-up call, merge a second call for the same
// event; replay a unit's way on the call; and the duty level (commanders).
// One form (#action-form) takes each action's fields; the API checks who may.
(function () {
  const { t, word, summary } = window.fieldlinkText;
  const api = window.fieldlinkApi;
  const units = window.fieldlinkUnits;
  const $ = (id) => document.getElementById(id);
  let incident = null;  // the panel's incident, with its orders, as the API last gave it
  let categories = [];
  fetch("/api/v1/plans").then((r) => r.json()).then((p) => { categories = p.categories; showDuty(p.duty_level); });

  const OPEN_ORDER = new Set(["sent", "delivered", "accepted", "en_route", "on_scene"]);
  const ACTIVE = ["new", "dispatched", "on_scene"];
  const options = (values, group) => values.map((v) => [v, group ? word(group, v) : v]);
  const unitChoice = (exclude) => [...units.values()].filter((u) => !exclude.has(u.id))
    .sort((a, b) => a.id.localeCompare(b.id))
    .map((u) => [u.id, `${u.name || u.id} · ${word("statuses", u.online ? u.status : "offline")}`]);
  const onIncident = () => new Set(incident.orders.filter((o) => OPEN_ORDER.has(o.state)).map((o) => o.unit_id));

  // A unit not available goes only diverted, and only after the dispatcher says so.
  async function divertAsked(unitId) {
    const unit = units.get(unitId);
    if (!unit || unit.status === "available") return false;
    if (!window.confirm(t("divert_confirm")(unitId, word("statuses", unit.status)))) throw new Error(t("not_diverted"));
    return true;
  }

  // action -> its key, the states it applies in, its fields, and the request it makes
  const ACTIONS = {
    edit: { key: "e", when: (s) => s !== "closed",
            fields: (i) => [
              { name: "category", choices: options(categories, "categories"), value: i.category },
              { name: "priority", choices: [1, 2, 3, 4].map((p) => [p, `P${p}`]), value: i.priority },
              { name: "summary", value: summary(i) }, { name: "address", value: i.location.address }],
            // a summary the server wrote, left as it reads, stays the server's (worded per screen)
            send: (i, v) => ["PATCH", `/api/v1/incidents/${i.id}`, {
              category: v.category, priority: Number(v.priority), summary: v.summary === summary(i) ? i.summary : v.summary,
              ...(i.location.lat != null ? { location: { lat: i.location.lat, lon: i.location.lon, address: v.address } } : {}),
            }] },
    note: { key: "m", when: (s) => s !== "closed", fields: () => [{ name: "text", required: true }],
            send: (i, v) => ["POST", `/api/v1/incidents/${i.id}/notes`, { text: v.text }] },
    plan: { key: "p", when: (s) => ACTIVE.includes(s), fields: () => [],
            send: (i) => ["POST", `/api/v1/incidents/${i.id}/plan`, {}] },
    send: { key: "s", when: (s) => ACTIVE.includes(s),
            fields: () => [{ name: "unit", choices: unitChoice(onIncident()) }],
            send: async (i, v) => ["POST", `/api/v1/incidents/${i.id}/orders`,
                                   { unit_ids: [v.unit], divert: await divertAsked(v.unit) }] },
    resolve: { key: "r", when: (s) => ACTIVE.includes(s), fields: () => [{ name: "note" }],
               send: (i, v) => ["POST", `/api/v1/incidents/${i.id}/resolve`, { note: v.note }] },
    handover: { key: "h", when: (s) => s !== "closed",
                fields: () => [{ name: "how", choices: options(["scene", "station", "station_to_police_station"], "handovers") },
                               { name: "to_unit", choices: [["", t("no_unit")], ...unitChoice(new Set())] },
                               { name: "to_department" }, { name: "reason", required: true }],
                send: (i, v) => ["POST", `/api/v1/incidents/${i.id}/handover`, {
                  kind: v.how, reason: v.reason, ...(v.to_unit ? { to_unit: v.to_unit } : {}),
                  ...(v.to_department ? { to_department: v.to_department } : {}) }] },
    close: { key: "c", when: (s) => s === "resolved" || s === "handed_over",
             fields: () => [{ name: "disposition", required: true }],
             send: (i, v) => ["POST", `/api/v1/incidents/${i.id}/close`, { disposition: v.disposition }] },
    merge: { key: "j", when: (s) => s !== "closed",
             fields: (i) => [{ name: "into", choices: [...(window.fieldlinkIncidents || new Map()).values()]
               .filter((o) => o.id !== i.id && o.state !== "closed")
               .map((o) => [o.id, `P${o.priority} ${word("categories", o.category)} · ${summary(o) || o.id}`]) }],
             send: (i, v) => ["POST", `/api/v1/incidents/${i.id}/merge`, { into: v.into }],
             after: (kept) => document.dispatchEvent(new CustomEvent("fieldlink:select", { detail: { id: kept.id } })) },
    followup: { key: "f", when: () => true,
                fields: () => [{ name: "outcome", choices: options(["satisfied", "unsatisfied", "no_answer", "other"], "outcomes") },
                               { name: "note" }],
                send: (i, v) => ["POST", `/api/v1/incidents/${i.id}/followup`, { outcome: v.outcome, note: v.note }] },
    // an order's own actions, opened from its line in "Units sent"
    cancel: { fields: () => [{ name: "reason", value: t("cancel_reason") }, { name: "replace", check: true }],
              send: (i, v, o) => ["POST", `/api/v1/orders/${o.order_id}/cancel`, { reason: v.reason, replace: v.replace }] },
    reassign: { fields: (i, o) => [{ name: "unit", choices: unitChoice(new Set([o.unit_id, ...onIncident()])) },
                                   { name: "reason" }],
                send: async (i, v, o) => ["POST", `/api/v1/orders/${o.order_id}/reassign`,
                                          { unit_id: v.unit, reason: v.reason, divert: await divertAsked(v.unit) }] },
  };

  function control(field) {
    const label = document.createElement("label");
    label.append(Object.assign(document.createElement("span"), { textContent: t(`field_${field.name}`) }));
    let input;
    if (field.choices) {
      input = document.createElement("select");
      input.append(...field.choices.map(([value, text]) => new Option(text, value)));
    } else {
      input = Object.assign(document.createElement("input"), field.check ? { type: "checkbox" } : {});
      input.required = !!field.required;
    }
    input.name = field.name;
    input.setAttribute("aria-label", t(`field_${field.name}`));  // a select's options are not its name
    if (field.value != null) input.value = field.value;
    label.append(input);
    if (field.check) label.classList.add("check");
    return label;
  }

  const form = $("action-form");
  let open = null;  // [action name, order or null] the form is for
  function start(name, order = null) {
    const action = ACTIONS[name];
    if (!incident || (action.when && !action.when(incident.state))) return;
    open = [name, order];
    form.replaceChildren(Object.assign(document.createElement("strong"), {
      textContent: order ? t(`do_${name}`)(order.unit_id) : t(`do_${name}`) }),
      ...action.fields(incident, order).map(control));
    const buttons = document.createElement("div");
    buttons.className = "row";
    buttons.append(Object.assign(document.createElement("button"), { type: "submit", textContent: t("confirm") }),
                   Object.assign(document.createElement("button"), { type: "button", className: "quiet", textContent: t("back") }));
    buttons.lastChild.addEventListener("click", stop);
    form.append(buttons);
    form.hidden = false;
    $("action-status").textContent = "";
    (form.querySelector("input, select") || form.querySelector("button")).focus();
  }
  function stop() { open = null; form.hidden = true; form.replaceChildren(); }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const [name, order] = open;
    const values = Object.fromEntries([...form.elements].filter((el) => el.name)
      .map((el) => [el.name, el.type === "checkbox" ? el.checked : el.value.trim()]));
    const status = $("action-status");
    try {
      const [method, path, body] = await ACTIONS[name].send(incident, values, order);
      const answer = await api(method, path, body);
      stop();
      status.textContent = t(`done_${name}`);
      if (ACTIONS[name].after) ACTIONS[name].after(answer);
    } catch (err) {
      status.textContent = t("not_done")(err.message);
    }
  });
  form.addEventListener("keydown", (ev) => { if (ev.key === "Escape") { ev.stopPropagation(); stop(); } });

  // the toolbar: one button per incident action, each saying its key
  const bar = $("incident-actions");
  bar.replaceChildren(...Object.entries(ACTIONS).filter(([, a]) => a.key).map(([name, a]) => {
    const button = Object.assign(document.createElement("button"), { type: "button" });
    button.dataset.action = name;
    button.setAttribute("aria-keyshortcuts", a.key.toUpperCase());
    button.addEventListener("click", () => start(name));
    return button;
  }));
  function showBar() {
    bar.querySelectorAll("button").forEach((b) => {
      b.textContent = `${t(`act_${b.dataset.action}`)} (${ACTIONS[b.dataset.action].key.toUpperCase()})`;
      b.disabled = !incident || !ACTIONS[b.dataset.action].when(incident.state);
    });
  }

  // each open order's time in its step, amber and red as the console's clocks are
  const STEP_AT = { sent: "sent_at", delivered: "delivered_at", accepted: "accepted_at",
                    en_route: "en_route_at", on_scene: "on_scene_at" };
  function tickSteps() {
    if (!incident) return;
    const time = window.fieldlinkTime;
    const now = time.nowS();
    document.querySelectorAll("#incident-orders .step-timer").forEach((el) => {
      const o = incident.orders.find((x) => x.order_id === el.dataset.orderId);
      if (!o || !o[STEP_AT[o.state]]) return;
      el.textContent = time.clockText(Math.max(0, Math.floor(now - o[STEP_AT[o.state]])));
      el.className = `step-timer${time.LATE[time.orderLateness(o, incident.category, now)]}`;
    });
  }
  setInterval(tickSteps, 1000);
  function showOrders() {
    $("incident-orders").replaceChildren(...incident.orders.map((o) => {
      const li = document.createElement("li");
      li.append(`${o.unit_id} · ${word("states", o.state)} `);
      if (STEP_AT[o.state]) {
        li.append(Object.assign(document.createElement("span"), { className: "step-timer", title: t("in_step_since") }), " ");
        li.lastChild.previousSibling.dataset.orderId = o.order_id;
      }
      // its way there and back on the replay: from the order to its end, a few minutes either side
      const track = Object.assign(document.createElement("button"), { type: "button", className: "small",
                                                                     textContent: t("act_track") });
      track.setAttribute("aria-label", t("do_track")(o.unit_id));
      track.addEventListener("click", () => {
        const end = o.cleared_at || o.cancelled_at || o.timed_out_at || o.declined_at || window.fieldlinkTime.nowS();
        document.dispatchEvent(new CustomEvent("fieldlink:replay",
                                               { detail: { unit: o.unit_id, since: o.sent_at - 300, until: end + 300 } }));
      });
      li.append(track);
      if (OPEN_ORDER.has(o.state)) {
        for (const name of ["cancel", "reassign"]) {
          const button = Object.assign(document.createElement("button"), { type: "button", className: "small",
                                                                              textContent: t(`act_${name}`) });
          button.setAttribute("aria-label", t(`do_${name}`)(o.unit_id));
          button.addEventListener("click", () => start(name, o));
          li.append(button);
        }
      }
      return li;
    }));
  }

  document.addEventListener("fieldlink:shown", (e) => {
    const same = incident && incident.id === e.detail.id;
    incident = e.detail;
    if (!same) { stop(); $("action-status").textContent = ""; }
    showBar();
    showOrders();
    tickSteps();
  });
  document.addEventListener("fieldlink:hidden", () => { incident = null; stop(); });
  document.addEventListener("fieldlink:language", () => { showBar(); if (incident) showOrders(); showDuty(); });

  // keys, while the panel is open and the focus is not in a field
  document.addEventListener("keydown", (e) => {
    if (!incident || e.target.closest("input, select, textarea, .leaflet-popup, #action-form")
        || e.ctrlKey || e.altKey || e.metaKey) return;
    const key = e.key.toLowerCase();
    if (key === "d") {  // the first recommended unit
      const first = document.querySelector("#recommendations button");
      if (first) { e.preventDefault(); first.click(); }
      return;
    }
    const name = Object.keys(ACTIONS).find((n) => ACTIONS[n].key === key);
    if (name) { e.preventDefault(); start(name); }
  });

  // the duty level: every console sees it, commanders change it
  const duty = $("duty");
  const commander = ["commander", "admin"].includes($("who").title);
  duty.disabled = !commander;
  function showDuty(level) {
    const now = level || duty.value || "normal";
    duty.replaceChildren(...["normal", "reinforced", "wartime"].map((l) => new Option(word("duty_levels", l), l)));
    duty.value = now;
  }
  duty.addEventListener("change", async () => {
    try {
      await api("PUT", "/api/v1/duty", { level: duty.value });
      $("duty-status").textContent = t("duty_set")(word("duty_levels", duty.value));
    } catch (err) {
      $("duty-status").textContent = t("not_done")(err.message);
    }
  });
  window.fieldlinkSocket.on("duty", (d) => showDuty(d.level));
})();
