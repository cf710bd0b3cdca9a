// The street map drawn without the internet, where no tile server is set (FIELDLINK_TILE_URL):
// the server's streets, water and place names for the view (`fieldlink map import`), asked
// for again whenever the view moves. The first view goes to the city's map if it shows none.
(function () {
  const map = window.fieldlinkMap;
  const { t } = window.fieldlinkText;
  if (document.getElementById("map").dataset.tileUrl) return;
  const renderer = L.canvas({ padding: 0.3, pane: "streets" });  // thousands of lines: one canvas
  map.createPane("streets").style.zIndex = 250;  // under the grids, units and incidents
  const WIDTH = { motorway: 6, trunk: 6, primary: 5, secondary: 4.5, tertiary: 4, residential: 3,
                  unclassified: 3, living_street: 2.5, pedestrian: 2.5, service: 2 };
  const style = (p) => p.layer === "water"
    ? { color: "#7fa9d6", weight: p.kind === "water" ? 1 : 2, fillColor: "#a9c8ea", fillOpacity: 1 }
    : { color: WIDTH[p.kind] >= 4 ? "#c9b27c" : "#b9b9b9", weight: WIDTH[p.kind] || 1, opacity: 0.9 };
  const STREET_NAMES_FROM = 16;  // a street's name once it is wide enough to carry one
  let layer = null;
  let asked = 0;
  let placed = false;

  function name(text) {  // a name is data: written as OpenStreetMap has it
    const el = document.createElement("span");
    el.translate = false;
    el.textContent = text;
    return el;
  }

  async function draw() {
    const view = map.getBounds();
    const zoom = Math.round(map.getZoom());
    const query = new URLSearchParams({ west: view.getWest(), south: view.getSouth(), east: view.getEast(),
                                        north: view.getNorth(), zoom });
    const mine = ++asked;
    const reply = await fetch(`/api/v1/map?${query}`);
    if (!reply.ok || mine !== asked) return;  // a newer view is on its way
    const body = await reply.json();
    if (!placed && body.bounds) {
      placed = true;
      const [w, s, e, n] = body.bounds;
      const city = L.latLngBounds([s, w], [n, e]);
      if (!view.intersects(city)) { map.fitBounds(city); return; }  // moveend draws it
    }
    const named = new Set();
    const next = L.geoJSON(body, {
      pane: "streets", renderer, interactive: false, style: (f) => style(f.properties),
      attribution: body.features.length ? t("osm_credit") : undefined,  // the ODbL asks it
      pointToLayer: (f, at) => L.marker(at, { pane: "streets", interactive: false, keyboard: false,
        icon: L.divIcon({ className: "place-name", html: name(f.properties.name), iconSize: null }) }),
      onEachFeature: (f, line) => {
        const p = f.properties;
        if (p.layer !== "street" || !p.name || zoom < STREET_NAMES_FROM || named.has(p.name)) return;
        named.add(p.name);  // once per street: a name on every stretch would hide the map
        line.bindTooltip(name(p.name), { permanent: true, direction: "center", className: "street-name" });
      },
    }).addTo(map);
    if (layer) map.removeLayer(layer);
    layer = next;
  }
  map.on("moveend", draw);
  draw();
})();
