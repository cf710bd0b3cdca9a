// What a unit's own screens (the in-car terminal, the guard kiosk) share: the device token
// (from ?token= once, then kept), the language (Chinese first; ?lang= or the switch, kept),
// and the link to /terminal with its online/offline state.
window.fieldlinkDevice = function (TEXT, onLanguage) {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || localStorage.getItem("fieldlink.token");
  if (token) localStorage.setItem("fieldlink.token", token);
  let lang = params.get("lang") || localStorage.getItem("fieldlink.lang") || "zh";
  const $ = (id) => document.getElementById(id);
  const t = (key) => TEXT[lang][key];

  function translate() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-t]").forEach((el) => { el.textContent = t(el.dataset.t); });
    $("lang").textContent = lang === "zh" ? "EN" : "中文";
    onLanguage();
  }
  $("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("fieldlink.lang", lang);
    translate();
  });

  function link(state) {
    $("link").dataset.t = state;
    $("link").className = state;
    $("link").textContent = t(state);
    document.body.classList.toggle("online-now", state === "online");
  }

  // `onSync(answer)` after every (re)connect: the server sends every open order again
  function connect(onSync) {
    const socket = io("/terminal", { auth: { token } });
    socket.on("connect", () => { link("online"); socket.emit("sync", (answer) => answer && onSync(answer)); });
    socket.on("disconnect", () => link("offline"));
    socket.on("connect_error", (err) => { $("message").textContent = err.message; });
    return socket;
  }
  return { $, t, translate, connect };
};
