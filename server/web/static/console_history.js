// The console's history: incidents of any period (today's by default) by state, category,
// grid, a unit sent and text; a click opens one in the panel, with its whole timeline and
// the tracks of the units sent.
(function () {
  const { t, word, summary, clock } = window.fieldlinkText;
  const api = window.fieldlinkApi;
  const $ = (id) => document.getElementById(id);
  const LIMIT = 200;
  const STATES = ["new", "dispatched", "on_scene", "resolved", "handed_over", "closed"];
  let categories = [];

  const day = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  const today = day(new Date());
  $("h-from").value = today;
  $("h-to").value = today;

  function fillChoices() {
    const state = $("h-state").value || "closed";  // today's closed calls, unless asked otherwise
    $("h-state").replaceChildren(new Option(t("every_state"), "any"), new Option(t("open_ones"), "open"),
                                 ...STATES.map((s) => new Option(word("states", s), s)));
    $("h-state").value = state;
    const category = $("h-category").value;
    $("h-category").replaceChildren(new Option(t("every_category"), ""),
                                    ...categories.map((c) => new Option(word("categories", c), c)));
    $("h-category").value = category;
  }
  fillChoices();
  fetch("/api/v1/plans").then((r) => r.json()).then((p) => { categories = p.categories; fillChoices(); });

  function query() {
    // the days in the browser's zone: from the first's midnight to the one after the last
    const since = new Date(`${$("h-from").value}T00:00`).getTime() / 1000;
    const until = new Date(`${$("h-to").value}T00:00`).getTime() / 1000 + 86400;
    const q = new URLSearchParams({ since, until, limit: LIMIT });
    if ($("h-state").value !== "any") q.set("state", $("h-state").value);
    for (const [key, id] of [["category", "h-category"], ["grid", "h-grid"], ["unit", "h-unit"], ["text", "h-text"]]) {
      if ($(id).value.trim()) q.set(key, $(id).value.trim());
    }
    return q;
  }

  function line(i) {
    const li = document.createElement("li");
    li.tabIndex = 0;
    li.dataset.id = i.id;
    li.append(`${clock(i.created_at, true)} · P${i.priority} ${word("categories", i.category)} · ${word("states", i.state)}`,
              Object.assign(document.createElement("small"), {
                textContent: [summary(i), i.location.address, i.grid, i.disposition].filter(Boolean).join(" · ") }));
    const open = () => document.dispatchEvent(new CustomEvent("fieldlink:select", { detail: { id: i.id } }));
    li.addEventListener("click", open);
    li.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
    return li;
  }

  $("history-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = $("history-status");
    status.textContent = t("h_searching");
    try {
      const found = await api("GET", `/api/v1/incidents?${query()}`);
      $("history-list").replaceChildren(...found.map(line));
      status.textContent = found.length >= LIMIT ? t("h_more")(LIMIT) : t("h_found")(found.length);
    } catch (err) {
      status.textContent = t("h_not_found")(err.message);
    }
  });
  document.addEventListener("fieldlink:language", fillChoices);
})();
