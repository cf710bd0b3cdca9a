// The console's words, Chinese first (i18n.js picks the language). Screens re-render on
// the "fieldlink:language" event. A key missing in English shows as itself (ids, kinds).
(function () {
  const TEXT = {
    zh: {
      available: "空闲", dispatched: "已派", en_route: "途中", on_scene: "到场",
      online: "在线", offline: "离线", sign_out: "退出", ack_alarm: "确认警报 (Enter)",
      alarm: (kind, unit) => `${unit} ${kind === "test" ? "演练报警" : "紧急报警"}`,
      incident: "警情", close_panel: "关闭警情面板", send_unit: "派遣单位", units_sent: "已派单位",
      timeline: "时间线", queue: "警情队列", queue_hint: "点击地图或按 N 新建",
      new_here: "在地图中心新建警情 (N)", cold_spots: "冷点",
      coverage_on: "显示空闲车辆多快能到", min3: "≤ 3 分钟", min5: "≤ 5 分钟", over5: "> 5 分钟",
      none_reach: "无车可达", replay: "轨迹回放", unit: "单位", from: "从", to: "到",
      show_track: "显示轨迹", play: "播放", pause: "暂停", speed: "回放速度", track_pos: "轨迹位置",
      units: "单位", every_grid: "全部网格", every_kind: "全部类型", every_status: "全部状态",
      grid: "网格", kind: "类型", status: "状态",
      more: (n) => `还有 ${n} 个：请缩小筛选`,
      waiting: "等待", handled: "已处置",
      new_incident: "新建警情", category: "类别", priority: "优先级", summary: "摘要", summary_hint: "发生了什么",
      address: "地址", create: "新建", not_created: (m) => `未能新建：${m}`,
      dispatch: (u) => `派遣 ${u}`, eta: (name, min, km) => `${name} · 约 ${min} 分钟 · ${km} 公里 `,
      post: (name, tier) => `${name} · ${tier} 分钟岗`,
      cells: (c, m, at) => `绿 ${c.green || 0} · 蓝 ${c.blue || 0} · 红 ${c.red || 0} · 黑 ${c.black || 0}（每格 ${m} 米）；更新于 ${at}`,
      no_coverage: (m) => `冷点暂不可用（${m}），30 秒后重试`,
      to_after_from: "结束时间须晚于开始时间。", no_track: (s) => `轨迹不可用（HTTP ${s}）。`,
      no_fixes: (u) => `${u} 在该时段没有位置。`, fixes: (n, u) => `${u} 的 ${n} 个定位点`,
      statuses: { available: "空闲", dispatched: "已派", busy: "忙碌", en_route: "途中", on_scene: "到场",
                  out_of_service: "停用", offline: "离线" },
      states: { new: "新建", dispatched: "已派", on_scene: "到场", resolved: "已处置",
                handed_over: "已移交", closed: "已结案", sent: "已派", delivered: "已收到",
                accepted: "已接受", cleared: "已完成", declined: "已拒绝", cancelled: "已取消",
                timed_out: "已超时", en_route: "途中" },
      categories: { urgent: "紧急", hazmat: "危化", help: "求助", dispute: "纠纷", report: "报案",
                    traffic: "交通", other: "其他" },
      kinds: { patrol_car: "巡逻车", motorcycle: "摩托", guard_post: "岗亭", foot: "步巡",
               volunteer: "志愿者" },
    },
    en: {
      available: "available", dispatched: "dispatched", en_route: "busy / en route",
      on_scene: "on scene", online: "online", offline: "offline", sign_out: "Sign out", ack_alarm: "Acknowledge (Enter)",
      alarm: (kind, unit) => `${kind === "test" ? "Drill" : "PANIC"} from ${unit}`,
      incident: "Incident", close_panel: "Close the incident panel", send_unit: "Send a unit",
      units_sent: "Units sent", timeline: "Timeline", queue: "Incident queue",
      queue_hint: "click the map or press N to create one",
      new_here: "New incident at the map centre (N)", cold_spots: "Cold spots",
      coverage_on: "Show how fast an available car gets there", min3: "≤ 3 min", min5: "≤ 5 min",
      over5: "> 5 min", none_reach: "none in reach", replay: "Replay a track", unit: "Unit",
      from: "From", to: "To", show_track: "Show track", play: "Play", pause: "Pause",
      speed: "Replay speed", track_pos: "Position in the track", units: "Units",
      every_grid: "every grid", every_kind: "every kind", every_status: "every status",
      grid: "Grid", kind: "Kind", status: "Status",
      more: (n) => `and ${n} more: narrow the filters`,
      waiting: "waiting", handled: "handled",
      new_incident: "New incident", category: "Category", priority: "Priority",
      summary: "Summary", summary_hint: "What happened", address: "Address", create: "Create",
      not_created: (m) => `Not created: ${m}`,
      dispatch: (u) => `Dispatch ${u}`, eta: (name, min, km) => `${name} · ${min} min · ${km} km `,
      post: (name, tier) => `${name} · ${tier}-minute post`,
      cells: (c, m, at) => `${c.green || 0} green · ${c.blue || 0} blue · ${c.red || 0} red · ` +
        `${c.black || 0} black cells of ${m} m; updated ${at}`,
      no_coverage: (m) => `Cold spots not available (${m}); retrying in 30 s`,
      to_after_from: "Choose a 'To' time after the 'From' time.",
      no_track: (s) => `Track not available (HTTP ${s}).`,
      no_fixes: (u) => `No positions of ${u} in that period.`, fixes: (n, u) => `${n} fixes of ${u}`,
      statuses: {}, states: {}, categories: {}, kinds: {},
    },
  };
  const language = window.fieldlinkLanguage(TEXT, (lang) =>
    document.dispatchEvent(new CustomEvent("fieldlink:language", { detail: { lang } })));
  // a word of a vocabulary (statuses, states, categories, kinds), or the id itself
  const word = (group, id) => (language.t(group) || {})[id] || String(id).replace(/_/g, " ");
  window.fieldlinkText = { t: language.t, word, translate: language.translate };
})();
