// In-car terminal: shows the unit's current order and sends the officer's acks.
(function () {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || localStorage.getItem("fieldlink.token");
  if (token) localStorage.setItem("fieldlink.token", token);
  const $ = (id) => document.getElementById(id);
  const orders = new Map();
  const finished = new Set(["declined", "cleared"]);
  let current = null;

  function render() {
    const open = [...orders.values()].filter((o) => !finished.has(o.state));
    current = open.length ? open[open.length - 1] : null;
    $("current").hidden = !current;
    $("no-order").hidden = !!current;
    document.querySelectorAll("#buttons button").forEach((b) => (b.disabled = !current));
    if (!current) return;
    $("category").textContent = current.category;
    $("priority").textContent = current.priority;
    $("summary").textContent = current.summary;
    const loc = current.location || {};
    $("where").textContent = loc.address || (loc.lat != null ? `${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)}` : "");
    $("state").textContent = current.state;
  }

  const socket = io("/terminal", { auth: { token } });
  socket.on("connect", () => {
    $("link").textContent = "online"; $("link").className = "online";
    socket.emit("sync", (r) => { if (r && r.unit_id) $("unit").textContent = r.unit_id; });
  });
  socket.on("disconnect", () => { $("link").textContent = "offline"; $("link").className = "offline"; });
  socket.on("connect_error", (err) => { $("message").textContent = "Not connected: " + err.message; });
  socket.on("order", (order, delivered) => {
    const known = orders.get(order.order_id);
    orders.set(order.order_id, { ...order, state: known ? known.state : "delivered" });
    if (delivered) delivered();
    render();
  });
  document.querySelectorAll("#buttons button").forEach((button) => {
    button.addEventListener("click", () => {
      if (!current) return;
      const status = button.dataset.status;
      socket.emit("ack", { order_id: current.order_id, status }, (reply) => {
        if (reply && reply.ok) {
          orders.get(reply.order.order_id).state = reply.order.state;
          $("message").textContent = "";
        } else {
          $("message").textContent = (reply && reply.error) || "No answer from the server.";
        }
        render();
      });
    });
  });
  render();
})();
