"""Build contexts archived as docker's CLI sends them (engine/build_context.py): what goes in,
in which form, and what is refused."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest

from orchestrator.engine.build_context import (
    ContextLimits,
    ContextRefused,
    check_context,
    context_archive,
    write_archive,
)


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def archive(root: Path, dockerfile: str | None = None, limits: ContextLimits = ContextLimits()) -> tarfile.TarFile:
    out = io.BytesIO()
    write_archive(root, dockerfile, limits, out)
    out.seek(0)
    return tarfile.open(fileobj=out)


def test_dockerignore_is_honoured_and_the_build_files_always_go(tmp_path: Path) -> None:
    make_tree(tmp_path, {
        "Dockerfile": "FROM scratch\n", "app.py": "print()\n", "big.bin": "x" * 10_000,
        "logs/a.log": "", "logs/keep.log": "", "node_modules/x/y.js": "",
        ".dockerignore": "big.bin\nlogs\n!logs/keep.log\nnode_modules\nDockerfile\n.dockerignore\n",
    })
    names = archive(tmp_path).getnames()
    # `logs` itself is excluded: only the file brought back by the exception is sent (as docker).
    assert names == [".dockerignore", "Dockerfile", "app.py", "logs/keep.log"]


def test_entries_are_in_name_order_owned_by_root(tmp_path: Path) -> None:
    make_tree(tmp_path, {"b/2": "", "b/1": "two\n", "a": "", "c/d/e": ""})
    tar = archive(tmp_path)
    assert tar.getnames() == ["a", "b", "b/1", "b/2", "c", "c/d", "c/d/e"]
    member = tar.getmember("b/1")
    assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
    assert tar.extractfile(member).read() == b"two\n"  # type: ignore[union-attr]


def test_links_stay_links_and_fifos_are_not_read(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": ""})
    (tmp_path / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(tmp_path / "pipe")  # reading it would block forever
    tar = archive(tmp_path)
    link = tar.getmember("passwd")
    assert link.issym() and link.linkname == "/etc/passwd"
    assert tar.getmember("pipe").isfifo()


def test_a_dockerfile_elsewhere_in_the_context_is_sent_though_ignored(tmp_path: Path) -> None:
    make_tree(tmp_path, {"docker/app.dockerfile": "FROM scratch\n", "docker/notes": "",
                         ".dockerignore": "docker\n"})
    names = archive(tmp_path, "./docker/app.dockerfile").getnames()
    assert names == [".dockerignore", "docker/app.dockerfile"]


@pytest.mark.parametrize("path", ["/", "/proc", "/proc/self", "/sys/kernel", "/dev"])
def test_system_directories_are_refused(path: str) -> None:
    with pytest.raises(ContextRefused, match="system directory"):
        check_context(Path(path))


def test_a_link_to_the_root_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "root").symlink_to("/")
    with pytest.raises(ContextRefused, match="system directory"):
        check_context(tmp_path / "root")


def test_no_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ContextRefused, match="is not a directory"):
        check_context(tmp_path / "file")
    with pytest.raises(ContextRefused, match="does not exist"):
        check_context(tmp_path / "missing")


def test_too_many_files_is_refused_naming_the_setting(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"f{i}": "" for i in range(5)})
    with pytest.raises(ContextRefused, match="more than 3 files.*max_build_context_files"):
        archive(tmp_path, limits=ContextLimits(max_files=3))


def test_too_many_bytes_is_refused_before_the_file_is_copied(tmp_path: Path) -> None:
    make_tree(tmp_path, {"small": "x", "zbig": "x" * 100_000})
    out = io.BytesIO()
    with pytest.raises(ContextRefused, match="larger than 20000 bytes.*zbig.*max_build_context_bytes"):
        write_archive(tmp_path, None, ContextLimits(max_bytes=20_000), out)
    assert len(out.getvalue()) < 20_000


def test_excluded_entries_count_against_the_walk(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"skip{i}.log": "" for i in range(30)} | {".dockerignore": "*.log\n"})
    with pytest.raises(ContextRefused, match="more than 20 entries"):
        archive(tmp_path, limits=ContextLimits(max_files=2))


def test_a_huge_or_broken_dockerignore_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("[unclosed\n")
    with pytest.raises(ContextRefused, match=r"\.dockerignore: syntax error"):
        archive(tmp_path)
    (tmp_path / ".dockerignore").write_text("a\n" * (600 * 1024))
    with pytest.raises(ContextRefused, match="larger than 1 MiB"):
        archive(tmp_path)


def test_a_stopped_archive_ends_early(tmp_path: Path) -> None:
    make_tree(tmp_path, {"a": "", "b": ""})
    stop = threading.Event()
    stop.set()
    with pytest.raises(ContextRefused, match="cancelled"):
        write_archive(tmp_path, None, ContextLimits(), io.BytesIO(), stop)


async def test_the_archive_is_a_temporary_file_read_from_its_start(tmp_path: Path) -> None:
    make_tree(tmp_path, {"Dockerfile": "FROM scratch\n"})
    async with context_archive(tmp_path, None, ContextLimits()) as context:
        assert context.tell() == 0
        assert tarfile.open(fileobj=context).getnames() == ["Dockerfile"]
    assert context.closed
