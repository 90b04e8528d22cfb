""".dockerignore reading and matching (engine/dockerignore.py), case by case as docker's CLI
archives a build context."""

from __future__ import annotations

import pytest

from orchestrator.engine.dockerignore import IgnorePatterns, PatternError, read_dockerignore


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        pytest.param(["*.md"], "README.md", True, id="star-at-root"),
        pytest.param(["*.md"], "docs/a.md", False, id="star-stays-in-its-directory"),
        pytest.param(["**/*.md"], "docs/a/b.md", True, id="globstar-any-depth"),
        pytest.param(["**/*.md"], "README.md", True, id="globstar-zero-directories"),
        pytest.param(["docs"], "docs/a/b.txt", True, id="directory-excludes-its-content"),
        pytest.param(["docs", "!docs/keep.txt"], "docs/keep.txt", False, id="exception"),
        pytest.param(["docs", "!docs/keep.txt"], "docs/other.txt", True, id="exception-is-exact"),
        pytest.param(["*", "!src"], "src/main.go", False, id="exception-for-a-directory"),
        pytest.param(["*", "!src"], "build/out", True, id="everything-else"),
        pytest.param(["!a", "a"], "a", True, id="last-match-wins"),
        pytest.param(["a", "!a", "a"], "a", True, id="last-match-wins-again"),
        pytest.param(["temp?"], "temp1", True, id="question-mark"),
        pytest.param(["temp?"], "temp12", False, id="question-mark-is-one-character"),
        pytest.param(["temp?"], "temp/", False, id="question-mark-is-no-slash"),
        pytest.param(["readme.md"], "README.md", False, id="case-sensitive"),
        pytest.param(["a/**/b"], "a/b", True, id="inner-globstar-none"),
        pytest.param(["a/**/b"], "a/x/y/b", True, id="inner-globstar-several"),
        pytest.param(["a/**/b"], "a/x/c", False, id="inner-globstar-other"),
        pytest.param(["foo/**"], "foo", False, id="trailing-globstar-not-the-directory"),
        pytest.param(["foo/**"], "foo/bar/baz", True, id="trailing-globstar-everything-below"),
        pytest.param(["**foo"], "a/xfoo", True, id="leading-globstar-is-a-suffix"),
        pytest.param(["\\*.txt"], "a.txt", False, id="escaped-star"),
        pytest.param(["\\*.txt"], "*.txt", True, id="escaped-star-literal"),
        pytest.param(["a.b"], "axb", False, id="dot-is-literal"),
        pytest.param(["*.b"], "a+b", False, id="dot-is-literal-in-a-wildcard"),
        pytest.param(["[a-c]x"], "bx", True, id="class"),
        pytest.param(["[a-c]x"], "dx", False, id="class-other"),
        pytest.param([], "anything", False, id="no-patterns"),
    ],
)
def test_excluded(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnorePatterns(patterns).excluded(path)[0] is excluded


def test_a_parents_results_carry_to_its_children() -> None:
    ignore = IgnorePatterns(["build", "!build/keep"])
    _, build = ignore.excluded("build")
    assert ignore.excluded("build/out.o", build)[0]
    assert not ignore.excluded("build/keep", build)[0]
    _, src = ignore.excluded("src")
    assert not ignore.excluded("src/build", src)[0]  # `build` is anchored at the root


def test_reading_a_file_cleans_patterns_as_docker_does() -> None:
    text = "\ufeff# comment\n\n  *.log  \n!keep.log\n./a//b/\n/tmp/*\n! /x\n../up\n #not a comment\n"
    assert read_dockerignore(text) == ["*.log", "!keep.log", "a/b", "tmp/*", "!x", "../up", "#not a comment"]


def test_an_excluded_directory_is_walked_only_for_an_exception_inside_it() -> None:
    ignore = IgnorePatterns(["docs", "!docs/keep.txt", "!**/other"])
    assert ignore.may_reinclude_under("docs")
    assert not IgnorePatterns(["docs", "!**/keep.txt"]).may_reinclude_under("docs")
    assert not IgnorePatterns(["docs"]).may_reinclude_under("docs")


@pytest.mark.parametrize("bad", ["[", "!", "a\\", "x[a-"])
def test_bad_patterns_are_refused(bad: str) -> None:
    with pytest.raises(PatternError):
        IgnorePatterns([bad])
