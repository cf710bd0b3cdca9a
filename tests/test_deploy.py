"""The deploy/ recipe names only what exists: settings the server knows, services and
files the compose file has, the instances the proxy sends to."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from server.config import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
KNOWN = {f"FIELDLINK_{f.name.upper()}" for f in fields(Settings)}


def env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_the_compose_file_names_real_settings_files_and_one_broker_id_per_instance() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    env = env_file(DEPLOY / "compose" / "fieldlink.env.example")
    assert {k for k in env if k.startswith("FIELDLINK_")} <= KNOWN
    assert env["FIELDLINK_REDIS_URL"].startswith("redis://redis:")
    instances = [s for s in services if s.startswith("fieldlink-")]
    ids = [services[s]["environment"]["FIELDLINK_MQTT_CLIENT_ID"] for s in instances]
    assert len(instances) >= 2 and len(set(ids)) == len(ids)
    for service in services.values():
        for key in service.get("environment", {}):
            assert not key.startswith("FIELDLINK_") or key in KNOWN, key
        for dependency in service.get("depends_on", {}):
            assert dependency in services
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / "compose" / source).exists() or source == "./certs", source
    upstream = (DEPLOY / "compose" / "upstream.conf").read_text()
    assert sorted(re.findall(r"server (fieldlink-\d+):8080", upstream)) == sorted(instances)
    build = services["fieldlink-1"]["build"]
    assert (DEPLOY / "compose" / build["context"] / build["dockerfile"]).exists()


def test_the_systemd_template_reads_the_shared_and_its_own_settings() -> None:
    unit = (DEPLOY / "systemd" / "fieldlink@.service").read_text()
    assert "EnvironmentFile=/etc/fieldlink/server.env" in unit
    assert "EnvironmentFile=/etc/fieldlink/instance-%i.env" in unit
    assert re.search(r"^ExecStart=\S+/fieldlink server$", unit, re.M)
    for name in re.findall(r"FIELDLINK_[A-Z_]+", unit):
        assert name in KNOWN, name
