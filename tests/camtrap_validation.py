"""Validate a Camtrap DP 1.0.2 package offline against the published standard in
``../shared/standards/camtrap-dp-1.0.2/`` (see its README):

- the package profile (``camtrap-dp-profile.json``) with a JSON Schema validator; its
  references by URL are resolved locally: the generic Data Package schema is left to
  ``frictionless`` (its own package validation, below), GeoJSON to the GeoJSON schema that
  ships with ``frictionless``;
- ``frictionless``'s package validation (descriptor + every table against its Table Schema,
  foreign keys included), with the schema URLs pointed at the local schema files and the
  Camtrap profile URL (which frictionless would download) replaced by the generic profile.

Nothing here reaches the network: :func:`no_network` makes any attempt fail loudly.
"""

from __future__ import annotations

import copy
import json
import socket
from pathlib import Path

import pytest

STANDARD = Path(__file__).resolve().parent.parent.parent / "shared" / "standards" / \
    "camtrap-dp-1.0.2"
BASE_URL = "https://raw.githubusercontent.com/tdwg/camtrap-dp/1.0.2/"
DATA_PACKAGE_URL = "https://specs.frictionlessdata.io/schemas/data-package.json"
GEOJSON_URL = "http://json.schemastore.org/geojson.json"


@pytest.fixture
def no_network(monkeypatch):
    """Any connection to a non-loopback address raises (a test that needs the internet
    fails instead of passing only where the network happens to be up)."""
    real = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"a test tried to reach the network: {address!r}")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: (_ for _ in ())
                        .throw(AssertionError(f"a test tried to reach the network: {address!r}")))
    yield


def profile_errors(descriptor: dict) -> list[str]:
    """Every violation of the Camtrap DP profile, as 'path: message'."""
    import frictionless
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    profile = json.loads((STANDARD / "camtrap-dp-profile.json").read_text(encoding="utf-8"))
    geojson = json.loads((Path(frictionless.__file__).parent / "assets" / "profiles" /
                          "geojson.json").read_text(encoding="utf-8"))
    registry = Registry().with_resources([
        (DATA_PACKAGE_URL, Resource.from_contents({}, default_specification=DRAFT4)),
        (GEOJSON_URL, Resource.from_contents(geojson, default_specification=DRAFT4)),
    ])
    validator = jsonschema.Draft4Validator(profile, registry=registry,
                                           format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    return sorted(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(descriptor))


def local_descriptor(folder: Path) -> dict:
    """``datapackage.json`` with the standard's URLs pointed at the local copies."""
    descriptor = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    local = copy.deepcopy(descriptor)
    local["profile"] = "data-package"  # the Camtrap profile is checked by profile_errors
    for resource in local["resources"]:
        schema = resource.get("schema")
        if isinstance(schema, str) and schema.startswith(BASE_URL):
            resource["schema"] = json.loads((STANDARD / schema[len(BASE_URL):])
                                            .read_text(encoding="utf-8"))
    return local


def table_errors(folder: Path) -> list[str]:
    """frictionless's report on the package: descriptor, tables, types, constraints, keys."""
    import frictionless

    package = frictionless.Package(local_descriptor(folder), basepath=str(folder))
    # the example's extra resource with inline data is not part of Camtrap DP's tables
    report = package.validate()
    errors = []
    for task in report.tasks:
        for err in task.errors:
            errors.append(f"{task.name}: {err.type}: {err.message}")
    for err in report.errors:
        errors.append(f"package: {err.type}: {err.message}")
    return errors


def validate(folder: Path) -> list[str]:
    descriptor = json.loads((folder / "datapackage.json").read_text(encoding="utf-8"))
    return profile_errors(descriptor) + table_errors(folder)
