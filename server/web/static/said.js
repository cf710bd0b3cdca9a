// What the server says, worded in Chinese: its refusals and the reasons it ends an order, by
// code and parameters (server/rules/refusals.py), and the summaries it writes (summary_code). English is the
// server's own text. Each wording gets the parameters and `w(group, code)`, the screen's
// word for a state, a kind of unit, a category.
window.fieldlinkSaid = {
  zh: {
    events: { order_sent: "派遣", arrived: "到场", resolve: "标记已处置", hand_over: "移交",
              close: "结案", update: "更新" },
    roles: { dispatcher: "调度员", commander: "指挥长", admin: "管理员" },
    summaries: {
      panic_at: (p) => `${p.unit} 按下紧急按钮`,
    },
    refusals: {
      no_incident: (p) => `没有警情 ${p.incident}`,
      no_order: (p) => `没有指令 ${p.order}`,
      no_unit: (p) => `没有单位 ${p.unit}`,
      no_alarm: (p) => `没有报警 ${p.alarm}`,
      no_alert: (p) => `没有提醒 ${p.alert}`,
      order_of_another_unit: (p) => `指令 ${p.order} 属于其他单位`,
      order_ended: (p, w) => `指令 ${p.order} 已是「${w("states", p.state)}」`,
      order_with_unit: (p) => `指令 ${p.order} 已在 ${p.unit}`,
      ack_passed: (p, w) => `指令已是「${w("states", p.state)}」`,
      decline_passed: (p, w) => `指令已是「${w("states", p.state)}」：不能再拒绝，请完成后清除`,
      incident_step: (p, w) => `此警情为「${w("states", p.state)}」，不能${w("events", p.event)}`,
      incident_no_orders: (p, w) => `此警情为「${w("states", p.state)}」，不能再派指令：请新建警情`,
      incident_not_closable: (p, w) => `此警情为「${w("states", p.state)}」，不能结案：请先标记已处置或移交`,
      no_plan_now: (p, w) => `此警情为「${w("states", p.state)}」：现在不能按预案派遣`,
      no_location_to_recommend: () => "警情没有位置：请先标定位置，才能推荐单位",
      no_location_to_call_out: () => "警情没有位置：请先标定位置，才能召集人员",
      call_out_needs_people_on_foot: (p, w) => `「${w("categories", p.category)}」的预案不含步行人员：召集用于搜寻、人群疏导、走失人员`,
      unit_has_this_incident: (p) => `${p.unit} 已有此警情的指令`,
      unit_offline: (p) => `${p.unit} 离线：通信中断`,
      unit_busy: (p) => `${p.unit} 正在处理警情 ${p.incident}：须确认调离才能派遣`,
      unit_out_of_service: (p) => `${p.unit} 已停用：须确认调离才能派遣`,
      volunteer_not_named: (p, w) => `${p.unit} 是${w("kinds", p.kind)}：志愿者只派往预案包含他们的警情（搜寻、人群疏导、走失人员）`,
      unknown_category: (p) => `未知类别 ${p.category}：可用 ${p.categories}`,
      merge_into_itself: () => "警情不能并入自身",
      merge_closed: (p) => `警情 ${p.incident} 已结案：只能合并未结案的警情`,
      too_many_cells: (p) => `${p.count} 个 ${p.cell_m} 米的格子，一张图放不下（最多 ${p.most}）：请用更大的格子`,
      sign_in: () => "请先登录",
      role_needed: (p, w) => `${p.name} 是${w("roles", p.role)}：此操作需要${w("roles", p.needs)}`,
      role_may_not: (p, w) => `${w("roles", p.role)}不能执行此操作`,
      metrics_token: () => "请发送 Authorization: Bearer <FIELDLINK_METRICS_TOKEN>",
      session_ended: () => "登录已结束：请重新登录",
      not_connected: () => "未连接：请用设备令牌连接",
      positions_too_often: () => "位置发送过于频繁：每几秒一次即可",
      // why the server ended an order (in the timeline)
      diverted: (p) => `已调往警情 ${p.incident}`,
      reassigned: (p) => `已改派 ${p.unit}`,
      incident_closed: () => "警情已结案",
      not_accepted_in: (p) => `${p.seconds} 秒内未接受`,
    },
  },
};
