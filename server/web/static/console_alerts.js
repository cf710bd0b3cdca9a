// The console's alerts: what a dispatcher works through (no unit, no location, an order not
// accepted, an alarm not heard, a unit silent on a call), each linked to its incident and
// acknowledged once for every console; the list is the server's, so a reload keeps it.
(function () {
  const { t, word, summary, clock } = window.fieldlinkText;
  const api = window.fieldlinkApi;
  const socket = window.fieldlinkSocket;
  const $ = (id) => document.getElementById(id);
  const open = new Map();  // id -> alert

  // what is pushed while the list is on its way is applied again over the answer: the
  // answer may have left the server before it
  let pushedMeanwhile = null;
  async function load() {
    const meanwhile = [];
    pushedMeanwhile = meanwhile;
    try {
      const list = await api("GET", "/api/v1/alerts");
      open.clear();
      list.forEach((a) => open.set(a.id, a));
      meanwhile.forEach((change) => change());
      $("alert-status").textContent = "";
    } catch (err) {
      $("alert-status").textContent = t("alerts_not_loaded")(err.message);
    }
    if (pushedMeanwhile === meanwhile) pushedMeanwhile = null;
    render();
  }
  function pushed(change) {
    change();
    if (pushedMeanwhile) pushedMeanwhile.push(change);
    render();
  }
  // the alert in the screen's language, from what the server sent with it
  const words = {
    state: (state) => word("states", state),
    kinds: (kinds) => String(kinds || "").split("/").map((k) => word("kinds", k)).join("/"),
  };
  function worded(a) {
    const say = t("alert_text")[a.kind];
    return say ? say(a.unit_id, a.refs || {}, words) : a.message;
  }
  function line(a) {
    const li = document.createElement("li");
    li.className = `alert-${a.kind}`;
    const incident = (window.fieldlinkIncidents || new Map()).get(a.incident_id);
    const about = incident ? (summary(incident) || word("categories", incident.category)) : a.incident_id;
    const go = Object.assign(document.createElement("button"), { type: "button", className: "link",
                                                               textContent: about || "" });
    go.title = t("open_incident");
    go.addEventListener("click", () => document.dispatchEvent(new CustomEvent("fieldlink:select",
                                                                             { detail: { id: a.incident_id } })));
    const ack = Object.assign(document.createElement("button"), { type: "button", className: "small",
                                                                textContent: t("ack_alert") });
    ack.addEventListener("click", () => acknowledge([a.id]));
    const when = clock(a.raised_at);
    li.append(t("alert_line")(when, word("alert_kinds", a.kind), worded(a)), ...(a.incident_id ? [go, " "] : []), ack);
    return li;
  }
  function render() {
    const list = [...open.values()].sort((x, y) => x.id - y.id);
    $("alerts").hidden = list.length === 0;
    $("alert-count").textContent = list.length ? String(list.length) : "";
    $("alert-list").replaceChildren(...list.map(line));
  }
  async function acknowledge(ids) {
    try {
      await api("POST", "/api/v1/alerts/acknowledge", { ids });
    } catch (err) {
      $("alert-status").textContent = t("not_acknowledged")(err.message);
    }
  }

  // and again after the link was down: what was missed meanwhile; the link may be up before
  // this script ran (it loads after console.js), its first pushes unheard: the list has them
  socket.on("connect", load);
  if (socket.connected) load();
  socket.on("alert", (a) => pushed(() => open.set(a.id, a)));
  socket.on("alerts_acknowledged", (done) => pushed(() => done.alerts.forEach((a) => open.delete(a.id))));
  // A: acknowledge the oldest, the one at the top
  document.addEventListener("keydown", (e) => {
    if (e.target.closest("input, select, textarea, .leaflet-popup") || e.ctrlKey || e.altKey || e.metaKey) return;
    if ((e.key === "a" || e.key === "A") && open.size) {
      e.preventDefault();
      acknowledge([Math.min(...open.keys())]);
    }
  });
  document.addEventListener("fieldlink:language", render);
  socket.on("incident", render);  // its summary, once the queue has it
})();
