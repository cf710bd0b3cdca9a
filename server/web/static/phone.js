// The phone's screen: the terminal's orders and answers (terminal.js), plus duty. On duty,
// the browser's position goes to the server every few seconds; off duty nothing is sent and
// the server keeps nothing new. The choice survives a reload; a service worker lets the page
// be installed and start without the network.
(function () {
  const { socket, t, said, $ } = window.fieldlinkTerminal;
  const KEY = "fieldlink.on_duty";
  const EVERY_MS = 5000;  // the server takes a phone's fix every few seconds at most
  let watch = null;
  let sentAt = 0;

  function send(pos) {
    if (Date.now() - sentAt < EVERY_MS || !socket.connected) return;
    sentAt = Date.now();
    const c = pos.coords;
    const fix = { ts: pos.timestamp / 1000, lat: c.latitude, lon: c.longitude };
    if (c.accuracy != null) fix.acc = c.accuracy;
    if (c.speed != null && c.speed >= 0) fix.speed = c.speed;
    if (c.heading != null && !Number.isNaN(c.heading)) fix.heading = c.heading;
    if (c.altitude != null) fix.alt = c.altitude;
    socket.emit("position", fix, (reply) => {
      $("message").textContent = reply && !reply.ok ? said(reply) : "";
    });
  }

  function show(on) {
    const button = $("duty-toggle");
    button.dataset.t = on ? "go_off_duty" : "go_on_duty";
    button.textContent = t(button.dataset.t);
    button.setAttribute("aria-pressed", on ? "true" : "false");
    $("duty-note").dataset.t = on ? "on_duty_note" : "off_duty_note";
    $("duty-note").textContent = t($("duty-note").dataset.t);
    document.body.classList.toggle("on-duty", on);
  }

  function setDuty(on) {
    localStorage.setItem(KEY, on ? "1" : "");
    show(on);
    if (on && watch === null && navigator.geolocation) {
      sentAt = 0;
      watch = navigator.geolocation.watchPosition(send, () => { $("message").textContent = t("no_location"); },
                                                  { enableHighAccuracy: true, maximumAge: 10000 });
    }
    if (!on && watch !== null) { navigator.geolocation.clearWatch(watch); watch = null; }
    if (socket.connected) socket.emit("duty", { on });
  }

  $("duty-toggle").addEventListener("click", () => setDuty(!localStorage.getItem(KEY)));
  socket.on("connect", () => setDuty(!!localStorage.getItem(KEY)));  // the server hears it again
  show(!!localStorage.getItem(KEY));
  document.getElementById("lang").addEventListener("click", () => show(!!localStorage.getItem(KEY)));
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/phone-sw.js");
})();
