"""orchestrator.swarm.objects: which old versions of a stack's secrets/configs to remove, and
service bodies with the ids of the objects they use."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.swarm.objects import stale_objects, with_object_ids


def listed(object_id: str, name: str, **labels: str) -> dict[str, Any]:
    """An object as GET /secrets lists it."""
    return {"ID": object_id, "Spec": {"Name": name, "Labels": labels}}


OURS = {"com.docker.stack.namespace": "t", "orchestrator.stack": "t", "orchestrator.object": "pw"}


def test_stale_objects_are_our_versions_of_the_stack_not_wanted_any_more() -> None:
    existing = [
        listed("new", "t_pw-2222222222", **OURS),
        listed("old", "t_pw-1111111111", **OURS),
        listed("older", "t_pw-0000000000", **OURS),
        # created by `docker stack deploy` (no label of ours): never ours to remove
        listed("theirs", "t_pw", **{"com.docker.stack.namespace": "t"}),
        # another stack's
        listed("other", "u_pw-1111111111", **{**OURS, "com.docker.stack.namespace": "u", "orchestrator.stack": "u"}),
        # made by hand
        listed("hand", "t_pw-9", **{}),
    ]

    assert stale_objects("t", existing, ["t_pw-2222222222"]) == ["old", "older"]
    assert stale_objects("t", existing, []) == ["new", "old", "older"]


SERVICE = {
    "Name": "t_web",
    "TaskTemplate": {"ContainerSpec": {
        "Image": "busybox",
        "Secrets": [{"File": {"Name": "pw"}, "SecretName": "t_pw-1"}],
        "Configs": [{"File": {"Name": "/c"}, "ConfigName": "t_c-1"}],
    }},
}


def test_object_ids_are_filled_into_a_copy_of_the_service_body() -> None:
    body = with_object_ids(SERVICE, {"t_pw-1": "sid"}, {"t_c-1": "cid"})

    spec = body["TaskTemplate"]["ContainerSpec"]
    assert spec["Secrets"] == [{"File": {"Name": "pw"}, "SecretName": "t_pw-1", "SecretID": "sid"}]
    assert spec["Configs"] == [{"File": {"Name": "/c"}, "ConfigName": "t_c-1", "ConfigID": "cid"}]
    assert "SecretID" not in SERVICE["TaskTemplate"]["ContainerSpec"]["Secrets"][0]  # type: ignore[index]


def test_a_missing_object_id_names_the_object_and_service() -> None:
    with pytest.raises(KeyError, match="no id for config 't_c-1' of service t_web"):
        with_object_ids(SERVICE, {"t_pw-1": "sid"}, {})


def test_a_body_without_references_is_copied_as_it_is() -> None:
    plain = {"Name": "t_x", "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}}
    assert with_object_ids(plain, {}, {}) == plain
