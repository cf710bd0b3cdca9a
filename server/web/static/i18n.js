// Every screen's language: Chinese first, English on the switch (#lang); ?lang= or the
// switch choose, and the browser keeps the choice for every screen. Elements with data-t
// take their text from TEXT[lang], data-t-title their title, data-t-placeholder theirs.
window.fieldlinkLanguage = function (TEXT, onLanguage = () => {}) {
  const params = new URLSearchParams(location.search);
  let lang = params.get("lang") || localStorage.getItem("fieldlink.lang") || "zh";
  if (!TEXT[lang]) lang = "zh";
  if (params.get("lang")) localStorage.setItem("fieldlink.lang", lang);  // a link's choice stays
  const t = (key) => TEXT[lang][key] ?? TEXT.en[key] ?? key;
  // the categories' names, the command centre's own (server/rules/categories.py)
  const names = document.getElementById("category-names");
  const categories = names ? JSON.parse(names.textContent) : {};
  // a word of a vocabulary (statuses, states, categories, kinds), or the id itself
  const word = (group, id) => (group === "categories" && (categories[id] || {})[lang])
    || (t(group) || {})[id] || String(id).replace(/_/g, " ");
  const sw = document.getElementById("lang");

  function translate() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    document.querySelectorAll("[data-t-title]").forEach((el) => { el.title = t(el.dataset.tTitle); });
    document.querySelectorAll("[data-t-label]").forEach((el) => {
      el.setAttribute("aria-label", t(el.dataset.tLabel));
    });
    document.querySelectorAll("[data-t-placeholder]").forEach((el) => {
      el.placeholder = t(el.dataset.tPlaceholder);
    });
    if (sw) {  // its name holds what it shows (axe: label-content-name-mismatch)
      sw.textContent = lang === "zh" ? "EN" : "中文";
      sw.setAttribute("aria-label", `${sw.textContent} · Language / 语言`);
    }
    onLanguage(lang);
  }
  if (sw) {
    sw.addEventListener("click", () => {
      lang = lang === "zh" ? "en" : "zh";
      localStorage.setItem("fieldlink.lang", lang);
      translate();
    });
  }
  // the server's words (said.js), in the screen's language: a refused answer
  // ({reason, params, message or error}) and a summary it wrote (summary_code, summary_params)
  const SAID = window.fieldlinkSaid || {};
  const wording = (group, id) => ((SAID[lang] || {})[group] || {})[id] || word(group, id);
  function said(answer) {
    const say = ((SAID[lang] || {}).refusals || {})[answer.reason];
    return say ? say(answer.params || {}, wording) : (answer.message || answer.error || "");
  }
  function summary(x) {
    const say = ((SAID[lang] || {}).summaries || {})[x.summary_code];
    return say ? say(x.summary_params || {}, wording) : (x.summary || "");
  }
  // a time (epoch seconds) as the screen's language writes it; `date`: with its day
  const clock = (ts, date = false, options = undefined) =>
    new Date(ts * 1000)[date ? "toLocaleString" : "toLocaleTimeString"](document.documentElement.lang, options);
  return { t, word, translate, lang: () => lang, said, summary, clock };
};
