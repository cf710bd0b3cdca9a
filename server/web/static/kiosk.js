// Guard-post kiosk: a panic button held to confirm, the state of the post's call for help,
// and requests to assist a neighbouring post. Chinese first, English on the switch.
(function () {
  const TEXT = {
    zh: { offline: "离线", online: "在线", panic: "一键报警", hold: "按住 2 秒报警", call: "求助状态",
          sent: "已按下", received: "中心已收到", dispatched: "已派警", queued: "报警已记录，网络恢复后自动发送",
          presses: (n) => `已按 ${n} 次`, en_route: "民警在途", on_scene: "已到达",
          no_call: "没有进行中的求助。", assist: "支援请求", no_request: "没有支援请求。",
          accept: "接受", clear: "完成", eta: (m) => `约 ${m} 分钟`, sending: "正在报警…",
          refused: "报警被拒绝，请拨打 110：", unit_states: { sent: "已派", delivered: "已收到",
          accepted: "已接受", en_route: "在途", on_scene: "已到达", cleared: "已完成" } },
    en: { offline: "offline", online: "online", panic: "PANIC", hold: "Hold for 2 s to call for help",
          call: "Call for help", sent: "Pressed", received: "Received by the centre", dispatched: "Dispatched",
          queued: "Alarm kept: it goes out by itself when the link is back", presses: (n) => `pressed ${n} times`, en_route: "Unit en route",
          on_scene: "Arrived", no_call: "No call for help in progress.", assist: "Requests to assist",
          no_request: "No requests to assist.", accept: "Accept", clear: "Done",
          eta: (m) => `ETA ${m} min`, sending: "Calling for help…",
          refused: "The alarm was refused: phone 110: ", unit_states: { sent: "sent",
          delivered: "received", accepted: "accepted", en_route: "en route", on_scene: "on scene", cleared: "done" } },
  };
  const HOLD_MS = 2000;
  const { $, t, translate, said, summary, connect, outbox, newId } = window.fieldlinkDevice(TEXT, () => { renderCall(); renderRequests(); });
  let call = null;
  const requests = new Map();  // assist orders by id

  let pending = 0;  // presses kept in the screen's outbox, not yet answered by the server
  function renderCall() {
    $("no-call").hidden = !!call || pending > 0;
    const units = call ? call.units : [];
    const moving = units.some((u) => u.state === "en_route" || u.state === "on_scene");
    const done = { sent: !!call || pending > 0, received: !!call, dispatched: !!(call && call.dispatched_at),
                   en_route: !!call && (moving || !!call.on_scene_at), on_scene: !!(call && call.on_scene_at) };
    $("presses").textContent = call && call.presses > 1 ? t("presses")(call.presses) : "";
    document.querySelectorAll("#steps li").forEach((li) => li.classList.toggle("done", done[li.dataset.step]));
    $("coming").replaceChildren(...units.map((u) => {
      const li = document.createElement("li");
      const eta = u.eta_s != null && u.state !== "on_scene" ? ` · ${t("eta")(Math.max(1, Math.round(u.eta_s / 60)))}` : "";
      li.textContent = `${u.name} · ${t("unit_states")[u.state] || u.state}${eta}`;
      return li;
    }));
  }

  function renderRequests() {
    const open = [...requests.values()].filter((o) => !["cleared", "declined", "cancelled"].includes(o.state));
    $("no-request").hidden = open.length > 0;
    $("requests").replaceChildren(...open.map((o) => {
      const li = document.createElement("li");
      li.append(`${summary(o)} · ${(o.location && o.location.address) || ""}`, document.createElement("br"));
      const next = o.state === "accepted" ? "cleared" : "accepted";
      const button = document.createElement("button");
      button.textContent = t(next === "accepted" ? "accept" : "clear");
      button.addEventListener("click", () => { o.state = `${next}…`; box.put("ack", { order_id: o.order_id, status: next }); renderRequests(); });
      li.append(button);
      return li;
    }));
  }

  // -- the panic button: held to confirm, with a ring filling up -------------------------
  let holdStart = null;
  function ring(share) { $("ring").style.strokeDasharray = `${share * 100} 100`; }
  function press() {
    if (holdStart !== null) return;
    holdStart = performance.now();
    const step = () => {
      if (holdStart === null) return;
      const share = Math.min(1, (performance.now() - holdStart) / HOLD_MS);
      ring(share);
      if (share >= 1) { holdStart = null; ring(0); raise(); } else requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }
  function release() { holdStart = null; ring(0); }
  function raise() {
    pending += 1;
    $("message").textContent = socket.connected ? t("sending") : t("queued");
    box.put("panic", { alarm_id: newId(), kind: "panic" });
    renderCall();
  }
  // the server's answers to what the outbox sent: a stored alarm shows its call at once
  function answered(event, payload, reply) {
    if (event === "panic") {
      pending = Math.max(0, pending - 1);
      if (reply && reply.ok) {
        $("message").textContent = "";
        if (reply.call) call = reply.call;
      } else {
        $("message").textContent = t("refused") + said(reply);
      }
      renderCall();
    } else {
      const o = requests.get(payload.order_id);
      if (reply && reply.ok) { if (o) o.state = reply.order.state; } else $("message").textContent = said(reply);
      renderRequests();
    }
  }
  const panic = $("panic");
  panic.addEventListener("pointerdown", (e) => { panic.setPointerCapture(e.pointerId); press(); });
  ["pointerup", "pointercancel", "lostpointercapture"].forEach((ev) => panic.addEventListener(ev, release));
  panic.addEventListener("keydown", (e) => { if ((e.key === " " || e.key === "Enter") && !e.repeat) { e.preventDefault(); press(); } });
  panic.addEventListener("keyup", (e) => { if (e.key === " " || e.key === "Enter") release(); });
  panic.addEventListener("click", (e) => e.preventDefault());  // only a held press calls for help

  // -- the link ----------------------------------------------------------------------------
  const socket = connect((r) => {
    if (r.unit_id) $("unit").textContent = r.unit_id;
    if (r.call) { call = r.call; renderCall(); }
  });
  const box = outbox(socket, answered);
  box.waiting().then((kept) => { pending = kept.filter((m) => m.event === "panic").length; if (pending) { $("message").textContent = t("queued"); renderCall(); } });
  socket.on("call", (update) => {
    if (update.state === "resolved" || update.state === "closed") {
      if (call && call.incident_id === update.incident_id) call = null;
    } else {
      call = update;
    }
    renderCall();
  });
  socket.on("order", (order, delivered) => {
    if (delivered) delivered();
    if (order.kind === "cancel") { const o = requests.get(order.order_id); if (o) o.state = "cancelled"; }
    else if (order.kind === "dispatch") requests.set(order.order_id, { ...order, state: requests.get(order.order_id)?.state || "delivered" });
    renderRequests();
  });
  translate();
})();
