"""What of an OpenStreetMap extract the console draws, and from which zoom."""

from __future__ import annotations

from server.rules.streetmap import MapPart, area_part, bbox_of, place_part, way_part


def test_streets_are_drawn_from_a_zoom_by_their_class_and_carry_their_names() -> None:
    main = way_part({"highway": "primary", "name": "Mannerheimintie"})
    assert main == MapPart("street", "primary", 0, "Mannerheimintie")  # at every zoom
    footway = way_part({"highway": "footway"})
    assert footway is not None and footway.min_zoom > main.min_zoom
    assert way_part({"highway": "proposed"}) is None  # not built: not drawn
    assert way_part({"building": "yes"}) is None


def test_water_is_a_lake_a_river_or_the_sea_s_edge_and_places_need_a_name() -> None:
    assert area_part({"natural": "water", "name": "Töölönlahti"}) == MapPart(
        "water", "water", 0, "Töölönlahti"
    )
    assert area_part({"landuse": "grass"}) is None
    assert way_part({"waterway": "stream"}).layer == "water"
    assert way_part({"natural": "coastline"}).kind == "coastline"
    assert place_part({"place": "suburb", "name": "Kamppi"}).min_zoom == 12
    assert place_part({"place": "suburb"}) is None


def test_the_box_of_a_line_and_of_a_polygon_with_a_hole() -> None:
    assert bbox_of([[24.9, 60.1], [24.95, 60.2]]) == (24.9, 60.1, 24.95, 60.2)
    square = [[[0, 0], [4, 0], [4, 4], [0, 0]], [[1, 1], [2, 1], [2, 2], [1, 1]]]
    assert bbox_of([square]) == (0, 0, 4, 4)
