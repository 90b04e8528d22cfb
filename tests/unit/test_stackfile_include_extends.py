"""`include:` and `extends: {file: ...}`: files read from other directories, with their relative
paths resolved against their own directory, their variables, their cycles and their bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.model.spec import MountSpec
from orchestrator.stackfile import Limits, StackFileError, load_stack, load_stack_text
from orchestrator.stackfile.limits import MAX_CHAIN_DEPTH, MAX_NAMED_STACK_FILES
from tests.unit.stackfile_helpers import write

HEAD = "services:\n  web:\n    image: busybox\n"


def problems(path: Path, **kwargs: object) -> list[tuple[str, str, int | None, str]]:
    with pytest.raises(StackFileError) as info:
        load_stack(path, env={}, name="t", **kwargs)  # type: ignore[arg-type]
    return [(Path(p.file).name, p.path, p.line, p.message) for p in info.value.problems]


def test_extends_from_another_file_resolves_its_paths_against_that_file(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    write(tmp_path / "common", "base.yml", """
        services:
          base:
            image: busybox:${TAG}
            build: ./app
            env_file: base.env
            volumes: ['./data:/data']
            environment: [A=1, B=2]
        """)
    write(tmp_path / "common", "base.env", "FROM_FILE=1\n")
    stack = load_stack(write(tmp_path, "stack.yml", """
        services:
          web:
            extends: {file: common/base.yml, service: base}
            environment: {B: '3'}
            volumes: ['./own:/own']
        """), env={"TAG": "2"}, name="t")
    web = stack.services["web"]
    assert web.image == "busybox:2"  # the extended file is interpolated with the same variables
    assert web.build is not None and web.build.context == str(tmp_path / "common" / "app")
    assert web.environment == {"FROM_FILE": "1", "A": "1", "B": "3"}
    assert web.volumes == (MountSpec("bind", "/data", str(tmp_path / "common" / "data")), MountSpec("bind", "/own", str(tmp_path / "own")))


def test_extends_problems_in_the_other_file_name_that_file(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", "services:\n  base:\n    image: busybox\n    deploy: {replicas: -1}\n")
    found = problems(write(tmp_path, "stack.yml", HEAD + "    extends: {file: base.yml, service: base}\n"))
    assert found == [("base.yml", "services.web.deploy.replicas", 4, "must be at least 0, not -1")]


def test_extends_cycle_across_files_shows_the_chain(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "services:\n  a:\n    extends: {file: b.yml, service: b}\n")
    write(tmp_path, "b.yml", "services:\n  b:\n    extends: {file: a.yml, service: a}\n")
    found = problems(write(tmp_path, "stack.yml", HEAD + "    extends: {file: a.yml, service: a}\n"))
    assert len(found) == 1
    file, path, line, message = found[0]
    assert (file, path, line) == ("a.yml", "services.a.extends", 3)
    assert message == f"extends cycle: a ({tmp_path / 'a.yml'}) -> b ({tmp_path / 'b.yml'}) -> a ({tmp_path / 'a.yml'})"


def test_extends_of_a_service_the_other_file_lacks(tmp_path: Path) -> None:
    write(tmp_path, "base.yml", "services:\n  base:\n    image: busybox\n")
    assert problems(write(tmp_path, "stack.yml", HEAD + "    extends: {file: base.yml, service: nope}\n")) == [
        ("stack.yml", "services.web.extends", 4, f"service 'nope' to extend is not defined in {tmp_path / 'base.yml'}")]


def test_include_loads_a_project_with_its_own_directory_and_env(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    write(tmp_path / "db", "compose.yaml", """
        services:
          db:
            image: postgres:${PG}
            volumes: ['./init:/docker-entrypoint-initdb.d']
            networks: [back]
        networks:
          back: {}
        """)
    write(tmp_path / "db", ".env", "PG=15\nSHARED=from-db\n")
    stack = load_stack(write(tmp_path, "stack.yml", """
        include:
          - db/compose.yaml
        services:
          web:
            image: busybox:${SHARED}
            depends_on: [db]
            networks: [back]
        """), env={"SHARED": "from-env"}, name="t")
    assert sorted(stack.services) == ["db", "web"]
    db = stack.services["db"]
    assert db.image == "postgres:15"  # from the included project's .env
    assert stack.services["web"].image == "busybox:from-env"
    assert db.volumes == (MountSpec("bind", "/docker-entrypoint-initdb.d", str(tmp_path / "db" / "init")),)
    assert stack.networks["back"].engine_name == "t_back"
    assert stack.warnings == ()


def test_include_long_syntax_project_directory_env_file_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    write(tmp_path / "lib", "compose.yaml", "services:\n  cache:\n    image: redis:${V}\n    volumes: ['./c:/c']\n")
    write(tmp_path / "lib", "override.yaml", "services:\n  cache:\n    user: nobody\n")
    write(tmp_path, "lib.env", "V=7\n")
    stack = load_stack(write(tmp_path, "stack.yml", """
        include:
          - path: [lib/compose.yaml, lib/override.yaml]
            project_directory: .
            env_file: lib.env
        services: {}
        """), env={}, name="t")
    cache = stack.services["cache"]
    assert (cache.image, cache.user) == ("redis:7", "nobody")
    assert cache.volumes[0].source == str(tmp_path / "c")  # the project directory given, not lib/


def test_a_local_definition_is_merged_over_an_included_one_with_a_warning(tmp_path: Path) -> None:
    write(tmp_path, "inc.yml", "services:\n  web:\n    image: busybox\n    user: nobody\nnetworks:\n  same: {}\n")
    stack = load_stack(write(tmp_path, "stack.yml", """
        include: [inc.yml]
        services:
          web:
            hostname: local
        networks:
          same: {}
        """), env={}, name="t")
    web = stack.services["web"]
    assert (web.image, web.user, web.hostname) == ("busybox", "nobody", "local")
    assert stack.warnings == ("services.web: overrides the definition included by include[0] (the two are merged, this one on top)",)


def test_include_cycle_shows_the_chain(tmp_path: Path) -> None:
    write(tmp_path, "a.yml", "include: [b.yml]\n")
    write(tmp_path, "b.yml", "include: [a.yml]\n")
    found = problems(write(tmp_path, "stack.yml", "include: [a.yml]\n" + HEAD))
    assert found == [("b.yml", "include[0]", 1, f"include cycle: {tmp_path / 'a.yml'} -> {tmp_path / 'b.yml'} -> {tmp_path / 'a.yml'}")]


def test_include_chains_are_bounded(tmp_path: Path) -> None:
    for index in range(MAX_CHAIN_DEPTH + 2):
        write(tmp_path, f"f{index}.yml", f"include: [f{index + 1}.yml]\n")
    found = problems(write(tmp_path, "stack.yml", "include: [f0.yml]\n" + HEAD))
    assert [message for *_rest, message in found] == [f"includes nest at most {MAX_CHAIN_DEPTH} deep"]


def test_the_number_of_files_read_is_bounded(tmp_path: Path) -> None:
    count = MAX_NAMED_STACK_FILES + 1
    for index in range(count):
        write(tmp_path, f"s{index}.yml", f"services:\n  s{index}:\n    image: busybox\n")
    text = "include:\n" + "".join(f"  - s{index}.yml\n" for index in range(count)) + HEAD
    found = problems(write(tmp_path, "stack.yml", text))
    assert [(path, message) for _file, path, _line, message in found] == [
        (f"include[{count - 1}]", f"{tmp_path / f's{count - 1}.yml'}: a stack may read at most {MAX_NAMED_STACK_FILES} files through include and extends")]


def test_an_included_file_is_a_file_a_stack_names(tmp_path: Path) -> None:
    (tmp_path / "dir.yml").mkdir()
    write(tmp_path, "big.yml", "x-pad: '" + "a" * 2000 + "'\n")
    found = problems(write(tmp_path, "stack.yml", "include: [dir.yml, big.yml, /proc/self/environ]\n" + HEAD), limits=Limits(max_file_size=1000))
    assert [(path, message.split(": ", 1)[1] if ": " in message else message) for _f, path, _l, message in found] == [
        ("include[0]", f"{tmp_path / 'dir.yml'} is not a regular file (a directory)"),
        ("include[1]", f"{tmp_path / 'big.yml'} is larger than 1000 bytes"),
        ("include[2]", "/proc/self/environ is under /proc, /sys, /dev: files there are never read"),
    ]


def test_a_stack_file_under_a_host_system_path_is_a_dangerous_option(tmp_path: Path) -> None:
    """Under `deny` it is refused before it is read: its content never reaches a message."""
    path = write(tmp_path, "stack.yml", "include: [/etc/passwd]\n" + HEAD)
    assert problems(path, limits=Limits(dangerous_options="deny")) == [
        ("stack.yml", "include[0]", 1, "dangerous option refused: reads a stack file from host system path /etc/passwd (ORCHESTRATOR_DANGEROUS_OPTIONS=deny)")]


def test_api_text_includes_resolve_against_base_dir(tmp_path: Path) -> None:
    write(tmp_path, "db.yml", "services:\n  db:\n    image: postgres\n    volumes: ['./d:/d']\n")
    stack = load_stack_text([("stack.yml", "include: [db.yml]\n" + HEAD)], tmp_path, env={}, name="t")
    assert stack.services["db"].volumes[0].source == str(tmp_path / "d")


def test_documents_and_files_merge_in_order(tmp_path: Path) -> None:
    base = write(tmp_path, "base.yml", HEAD + "    user: a\n---\nservices:\n  web:\n    user: b\n    hostname: h\n")
    over = write(tmp_path, "over.yml", "services:\n  web:\n    user: c\n---\nservices:\n  web:\n    hostname: !reset null\n")
    web = load_stack([base, over], env={}, name="t").services["web"]
    assert (web.user, web.hostname) == ("c", None)


def test_a_non_mapping_document_is_named_by_its_number(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "stack.yml", HEAD + "---\n- a\n")) == [("stack.yml", "", 5, "the top level must be a mapping (document 2)")]
