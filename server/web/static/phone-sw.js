// The phone's service worker: the screen's shell kept, so the installed app opens without
// the network (orders and answers wait in the screen's outbox until the link is back).
const SHELL = "fieldlink-phone-v1";
const FILES = ["/static/device.css", "/static/terminal.css", "/static/phone.css", "/static/i18n.js",
               "/static/device.js", "/static/terminal.js", "/static/phone.js",
               "/vendor/socket.io/socket.io.min.js", "/static/icons/phone-192.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)));
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.pathname.startsWith("/socket.io/")) return;
  // the network first (a new release shows at once), the kept copy when it is away
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok && (FILES.includes(url.pathname) || url.pathname === "/phone")) {
          const copy = response.clone();
          caches.open(SHELL).then((cache) => cache.put(url.pathname, copy));
        }
        return response;
      })
      .catch(() => caches.match(url.pathname)),
  );
});
