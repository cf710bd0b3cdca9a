// In-car terminal: the current order with distance and ETA, the officer's answers (decline
// with a reason), the shift's orders; reconnects by itself, and an order sent while it was
// offline shows when it is back (every open order comes again on sync). Chinese first.
(function () {
  const TEXT = {
    zh: { offline: "离线", online: "在线", offline_note: "离线：连接恢复后会显示新指令",
          no_order: "当前没有指令。", state: "状态", history: "本班次指令", accept: "接受",
          en_route: "出发", on_scene: "到达", clear: "完成", decline: "拒绝", why_decline: "拒绝原因",
          back: "返回", away: (km, min) => `距离 ${km} 公里 · 约 ${min} 分钟`,
          reasons: ["正在处置其他警情", "车辆故障", "正在押解嫌疑人"],
          states: { sent: "已派", delivered: "已收到", accepted: "已接受", en_route: "在途",
                    on_scene: "已到达", cleared: "已完成", declined: "已拒绝", cancelled: "已取消", timed_out: "已超时" },
          // the phone's screen (phone.js)
          go_on_duty: "上岗", go_off_duty: "下岗", off_duty_note: "未上岗：不发送也不保存位置。",
          on_duty_note: "已上岗：正在发送您的位置。", no_location: "无法获取位置：请允许本页使用定位。" },
    en: { offline: "offline", online: "online", offline_note: "Offline: new orders show when the link is back",
          no_order: "No current order.", state: "State", history: "This shift", accept: "Accept",
          en_route: "En route", on_scene: "On scene", clear: "Clear", decline: "Decline",
          why_decline: "Why decline?", back: "Back", away: (km, min) => `${km} km away · ETA ${min} min`,
          reasons: ["Handling another incident", "Vehicle fault", "Escorting a suspect"],
          states: { sent: "Sent", delivered: "Received", accepted: "Accepted", en_route: "En route",
                    on_scene: "On scene", cleared: "Cleared", declined: "Declined", cancelled: "Cancelled", timed_out: "Timed out" },
          go_on_duty: "Go on duty", go_off_duty: "Go off duty",
          off_duty_note: "Off duty: no position is sent or kept.",
          on_duty_note: "On duty: your position is being sent.",
          no_location: "No position: allow this page to use your location." },
  };
  // which answer each button gives, from which order states
  const NEXT = { accepted: ["sent", "delivered"], en_route: ["accepted"], on_scene: ["accepted", "en_route"],
                 cleared: ["accepted", "en_route", "on_scene"] };
  const FINISHED = new Set(["declined", "cleared", "cancelled", "timed_out"]);
  const { $, t, word, clock, translate, said, summary, connect, outbox, chime } = window.fieldlinkDevice(TEXT, () => { reasons(); render(); });
  const bell = chime();  // rings while an order waits to be accepted
  const orders = new Map();
  let current = null;
  let unitId = null;

  function shiftKey() { return `fieldlink.shift.${unitId}.${new Date().toDateString()}`; }
  function remember(order) {  // the shift's orders survive a reload of the page
    if (!unitId) return;
    const past = JSON.parse(localStorage.getItem(shiftKey()) || "{}");
    past[order.order_id] = { ts: order.ts, category: order.category, summary: order.summary,
                             summary_code: order.summary_code, summary_params: order.summary_params, state: order.state };
    localStorage.setItem(shiftKey(), JSON.stringify(past));
  }

  function render() {
    const open = [...orders.values()].filter((o) => !FINISHED.has(o.state) && o.kind !== "cancel");
    current = open.length ? open[open.length - 1] : null;
    $("current").hidden = !current;
    $("no-order").hidden = !!current;
    document.querySelectorAll("#buttons [data-status]").forEach((b) => {
      b.disabled = !current || !NEXT[b.dataset.status].includes(current.state);
    });
    $("decline").disabled = !current || !["sent", "delivered"].includes(current.state);
    bell.ring(open.some((o) => ["sent", "delivered"].includes(o.state)));
    if (current) {
      $("priority").textContent = `P${current.priority}`;
      $("priority").className = `p p${current.priority}`;
      $("category").textContent = word("categories", current.category);
      $("summary").textContent = summary(current);
      const loc = current.location || {};
      $("where").textContent = loc.address || (loc.lat != null ? `${loc.lat.toFixed(5)}, ${loc.lon.toFixed(5)}` : "");
      $("way").textContent = current.distance_m != null
        ? t("away")((current.distance_m / 1000).toFixed(1), Math.max(1, Math.round(current.eta_s / 60))) : "";
      $("state").textContent = (t("states")[current.state] || current.state) + (current.sending ? " …" : "");
    }
    const past = unitId ? Object.values(JSON.parse(localStorage.getItem(shiftKey()) || "{}")) : [];
    $("past").replaceChildren(...past.sort((a, b) => b.ts - a.ts).map((o) => {
      const li = document.createElement("li");
      const at = clock(o.ts, false, { hour: "2-digit", minute: "2-digit" });
      li.textContent = `${at} ${word("categories", o.category)} · ${summary(o).split("\n")[0]} · ${t("states")[o.state] || o.state}`;
      return li;
    }));
  }

  function reasons() {  // the decline reasons, in the screen's language
    $("reason-list").replaceChildren(...t("reasons").map((reason) => {
      const b = document.createElement("button");
      b.textContent = reason;
      b.addEventListener("click", () => { $("reasons").close(); answer("declined", reason); });
      return b;
    }));
  }

  // An answer shows at once and waits in the screen's outbox until the server has it: the
  // time it was pressed goes with it, also when the link is down for a while.
  function answer(status, reason) {
    if (!current) return;
    current.state = status;
    current.sending = true;
    remember(current);
    box.put("ack", { order_id: current.order_id, status, reason: reason || "" });
    render();
  }
  function answered(_event, payload, reply) {
    const order = orders.get(payload.order_id);
    if (order) {
      order.sending = false;
      if (reply && reply.ok) order.state = reply.order.state;
      remember(order);
    }
    $("message").textContent = reply && reply.ok ? "" : said(reply);
    render();
  }

  const socket = connect((r) => { if (r.unit_id) { unitId = r.unit_id; $("unit").textContent = r.unit_id; render(); } });
  window.fieldlinkTerminal = { socket, t, said, $ };  // the phone's screen adds its duty (phone.js)
  const box = outbox(socket, answered);
  socket.on("order", (order, delivered) => {
    if (order.kind === "cancel") {
      const known = orders.get(order.order_id);
      if (known) { known.state = "cancelled"; remember(known); }
    } else {
      const known = orders.get(order.order_id);
      // an answer still in the outbox stands until the server has it
      const state = known && (known.sending || !["sent"].includes(known.state)) ? known.state
        : order.state === "sent" ? "delivered" : order.state;
      const merged = { ...order, state, sending: !!(known && known.sending) };
      orders.set(order.order_id, merged);
      remember(merged);
    }
    if (delivered) delivered();
    render();
  });
  document.querySelectorAll("#buttons [data-status]").forEach((b) => b.addEventListener("click", () => answer(b.dataset.status)));
  $("decline").addEventListener("click", () => $("reasons").showModal());
  $("reason-cancel").addEventListener("click", () => $("reasons").close());
  translate();
})();
