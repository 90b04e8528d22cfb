"""Registry and credential lookup for pulls, without an engine or a registry."""

from __future__ import annotations

import base64

import pytest

from orchestrator.engine.images import registry_auth, registry_of


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        pytest.param("busybox", "docker.io", id="official"),
        pytest.param("library/busybox:1", "docker.io", id="hub-namespace"),
        pytest.param("index.docker.io/me/app", "docker.io", id="hub-alias"),
        pytest.param("registry.example.com/team/app:2", "registry.example.com", id="dotted"),
        pytest.param("127.0.0.1:5000/app", "127.0.0.1:5000", id="port"),
        pytest.param("localhost/app", "localhost", id="localhost"),
    ],
)
def test_registry_of(image: str, registry: str) -> None:
    assert registry_of(image) == registry


def test_auths_entries_match_with_or_without_scheme_and_path() -> None:
    config = {
        "auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnB3"},
            "registry.example.com": {"identitytoken": "tok"},
            "http://127.0.0.1:5000/v2/": {"username": "u", "password": "p"},
        }
    }
    assert registry_auth("docker.io", config) == {"auth": "aHViOnB3"}
    assert registry_auth("registry.example.com", config) == {"identitytoken": "tok"}
    assert registry_auth("127.0.0.1:5000", config) == {"auth": base64.b64encode(b"u:p").decode()}
    assert registry_auth("other.example.com", config) is None
    assert registry_auth("docker.io", {}) is None
