"""The REST API against its own OpenAPI document: schemathesis sends generated requests, valid
and invalid, to a live server; no request may make it fail, and every answer must match the
document."""

from __future__ import annotations

import http.client
import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from harness.clients import UnitLink
from harness.server import ServerProcess
from harness.waiting import eventually
from server.rules.geo import parse_grids
from server.store import db, save_grids
from tests.conftest import DATA, SERVER_SETTINGS


@pytest.fixture(scope="module")
def live_server(tmp_path_factory, mosquitto):
    server = ServerProcess(tmp_path_factory.mktemp("openapi"), mosquitto.url, **SERVER_SETTINGS)
    with db.connection_context():
        save_grids(parse_grids(json.loads((DATA / "city_grids.geojson").read_text())))
    for unit_id, kind in (
        ("car-1", "patrol_car"),
        ("car-2", "patrol_car"),
        ("post-1", "guard_post"),
    ):
        server.add_unit(unit_id, kind)
    server.start()
    links = [UnitLink(mosquitto.port, u) for u in ("car-1", "car-2", "post-1")]
    for i, link in enumerate(links):
        link.online()
        link.fix(31.23 + i * 0.002, 121.47)
    eventually(lambda: all(u["position"] for u in server.get("/api/v1/units")))
    added = server.command("users", "add", "desk", "--role", "dispatcher")
    assert added.returncode == 0, added.stderr
    server.tokens = {"admin": server.token, "dispatcher": json.loads(added.stdout)["api_token"]}
    yield server
    for link in links:
        link.close()
    server.stop()


@pytest.mark.parametrize(("who", "examples"), [("admin", 20), ("dispatcher", 5), ("nobody", 3)])
def test_every_operation_answers_by_its_document(live_server, who, examples) -> None:
    """Per operation, generated requests as an admin, a dispatcher (refused what is not
    theirs) and nobody signed in: none may fail the server (5xx), and each answer must match
    the status codes and schemas the document gives, which has no catch-all `default`."""
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    assert not [op for op in operations if "default" in op.definition.raw["responses"]]
    headers = {"Authorization": f"Bearer {live_server.tokens[who]}"} if who != "nobody" else {}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def answers_by_the_document(case) -> None:
            # ids are generated at random: a valid body for a unit that does not exist is
            # rightly a 404, so "valid data must be accepted" does not apply
            case.call_and_validate(
                base_url=live_server.url,
                headers=headers,
                excluded_checks=[positive_data_acceptance],
            )

        answers_by_the_document()


def test_the_document_lists_the_dispatcher_actions(live_server) -> None:
    paths = live_server.get("/api/v1/openapi.json")["paths"]
    for path in (
        "/api/v1/incidents",
        "/api/v1/incidents/{incident_id}/recommendations",
        "/api/v1/incidents/{incident_id}/orders",
        "/api/v1/incidents/{incident_id}/notes",
        "/api/v1/incidents/{incident_id}/handover",
        "/api/v1/incidents/{incident_id}/resolve",
        "/api/v1/incidents/{incident_id}/close",
        "/api/v1/incidents/{incident_id}/followup",
        "/api/v1/incidents/{incident_id}/timeline",
        "/api/v1/orders/{order_id}/cancel",
        "/api/v1/orders/{order_id}/reassign",
        "/api/v1/units/{unit_id}/status",
        "/api/v1/duty",
        "/api/v1/plans",
        "/api/v1/grids",
        "/api/v1/posts",
    ):
        assert path in paths, path


def test_a_body_over_the_limit_is_refused_before_it_is_read_as_documented(live_server) -> None:
    """Each change operation: a request announcing 20 MB gets its documented 413 at once;
    nothing but the headers is sent, so an answer proves the body was never waited for."""
    document = live_server.get("/api/v1/openapi.json")
    host, port = live_server.url.removeprefix("http://").split(":")
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            if method not in ("post", "put", "patch"):
                continue
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            connection.putrequest(method.upper(), path.replace("{", "x-").replace("}", ""))
            for name, value in (
                ("Authorization", f"Bearer {live_server.token}"),
                ("Content-Type", "application/json"),
                ("Content-Length", str(20_000_000)),
            ):
                connection.putheader(name, value)
            connection.endheaders()
            answer = connection.getresponse()
            assert answer.status == 413, (method, path, answer.status)
            assert "413" in operation["responses"], (method, path)
            connection.close()
