// What a unit's own screens (the in-car terminal, the guard kiosk) share: the device token
// (from ?token= once, then kept), the language (i18n.js), the link to /terminal with its
// online/offline state, and the screen's outbox.
window.fieldlinkDevice = function (TEXT, onLanguage) {
  const params = new URLSearchParams(location.search);
  const token = params.get("token") || localStorage.getItem("fieldlink.token");
  if (token) localStorage.setItem("fieldlink.token", token);
  const $ = (id) => document.getElementById(id);
  const language = window.fieldlinkLanguage(TEXT, onLanguage);
  const { t, word, clock, translate } = language;
  // a refused answer, worded; an order's summary: the server's first line worded, then the
  // dispatcher's notes
  const said = (reply) => language.said(reply || {});
  function summary(o) {
    const [first, ...notes] = (o.summary || "").split("\n");
    return [language.summary({ ...o, summary: first }), ...notes].join("\n");
  }

  function link(state) {
    $("link").dataset.t = state;
    $("link").className = state;
    $("link").textContent = t(state);
    document.body.classList.toggle("online-now", state === "online");
  }

  // An id no other press of this screen has: crypto.randomUUID needs https, a kiosk on a
  // plain-http LAN has getRandomValues only.
  function newId() {
    return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  // The screen's outbox, as the agent's: a panic or an officer's answer waits in IndexedDB
  // until the server's reply says it is handled, across reloads and lost links; sent one at
  // a time, in the order pressed. Each carries the time it was pressed (`ts`). A refusal
  // is an answer too (the server will never take it): it leaves, and `onAnswer` says why.
  function outbox(socket, onAnswer) {
    const STORE = "messages";
    const opened = new Promise((resolve, reject) => {
      const request = indexedDB.open(`fieldlink-outbox-${token || "none"}`, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "seq", autoIncrement: true });
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const run = (mode, work) => opened.then((db) => new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const result = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(result && result.result);
      tx.onerror = () => reject(tx.error);
    }));
    let sending = false;
    let retry = null;

    async function flush() {
      if (sending || !socket.connected) return;
      const [next] = await run("readonly", (store) => store.getAll(null, 1));
      if (!next) return;
      sending = true;
      socket.timeout(8000).emit(next.event, next.payload, async (err, reply) => {
        sending = false;
        if (err || (reply && reply.retry)) {  // no answer, or "try again": it stays, goes again
          clearTimeout(retry);
          retry = setTimeout(flush, 3000);
          return;
        }
        await run("readwrite", (store) => store.delete(next.seq));
        onAnswer(next.event, next.payload, reply);
        flush();
      });
    }

    async function put(event, payload) {
      const message = { event, payload: { ts: Date.now() / 1000, ...payload }, created: Date.now() };
      await run("readwrite", (store) => store.add(message));
      flush();
      return message.payload;
    }
    const waiting = () => run("readonly", (store) => store.getAll());
    socket.on("connect", flush);
    return { put, flush, waiting };
  }

  // `onSync(answer)` after every (re)connect: the server sends every open order again
  function connect(onSync) {
    const socket = io("/terminal", { auth: { token } });
    socket.on("connect", () => { link("online"); socket.emit("sync", (answer) => answer && onSync(answer)); });
    socket.on("disconnect", () => link("offline"));
    // the server's refusal (a wrong token) is said; a lost link is the offline state already
    socket.on("connect_error", (err) => { if (err.type !== "TransportError") $("message").textContent = err.message; });
    return socket;
  }

  // A tone that repeats until stopped: the terminal's new order, unanswered. Browsers play
  // sound only after a first touch of the page (kiosk mode starts Chromium with
  // --autoplay-policy=no-user-gesture-required); the screen flashes in any case.
  function chime() {
    let audio = null;
    let timer = null;
    function beep() {
      try {
        audio = audio || new AudioContext();
        const tone = audio.createOscillator();
        const gain = audio.createGain();
        tone.frequency.value = 988;
        gain.gain.value = 0.25;
        tone.connect(gain).connect(audio.destination);
        tone.start();
        tone.stop(audio.currentTime + 0.3);
      } catch (err) { /* no audio device: the flashing screen still says it */ }
    }
    return {
      ring(on) {
        document.body.classList.toggle("ringing", on);
        if (on && !timer) { beep(); timer = setInterval(beep, 1200); }
        if (!on && timer) { clearInterval(timer); timer = null; }
      },
      get ringing() { return timer !== null; },
    };
  }
  return { $, t, word, clock, translate, said, summary, connect, outbox, newId, chime };
};
