// What a unit's own screens (the in-car terminal, the guard kiosk) share: the device token
// (from ?token= once, then kept), the language (i18n.js),
// and the link to /terminal with its online/offline state.
window.fieldlinkDevice = function (TEXT, onLanguage) {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || localStorage.getItem("fieldlink.token");
  if (token) localStorage.setItem("fieldlink.token", token);
  const $ = (id) => document.getElementById(id);
  const { t, translate } = window.fieldlinkLanguage(TEXT, onLanguage);

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
