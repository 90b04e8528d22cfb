"""The files of a stack -> one merged tree, before any key is read.

As compose-go does it, every YAML document of every file, in order, is: interpolated (with the
environment of its project), stripped of its `include:` after the included projects' resources
were added to it (stackfile/include.py), given its services' `extends` (stackfile/extends.py),
and merged onto what came before it (stackfile/merge.py). The documents of one file (`---`)
count as successive files. A file that cannot be parsed stops the load before the merge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from pathlib import Path

from orchestrator.stackfile.extends import apply_extends
from orchestrator.stackfile.include import apply_include
from orchestrator.stackfile.interpolate import interpolate_tree
from orchestrator.stackfile.merge import drop_reset, merge
from orchestrator.stackfile.problems import Where
from orchestrator.stackfile.reader import resolve_path
from orchestrator.stackfile.sources import Sources
from orchestrator.stackfile.unique import unique_entries
from orchestrator.stackfile.yamlread import YMap, read_documents


def merged_model(texts: Sequence[tuple[str, str]], env: Mapping[str, str], sources: Sources) -> YMap | None:
    """The stack files given (name, text), merged; None when one could not be parsed."""
    problems, limits = sources.ctx.problems, sources.ctx.limits
    parsed = [(file, read_documents(text, file, problems, limits)) for file, text in texts]
    if any(documents is None for _file, documents in parsed):
        return None
    chain = tuple(resolve_path(file, sources.ctx.base_dir) for file, _text in texts)
    documents: list[tuple[str, Any]] = []
    for file, found in parsed:
        for document in found or ():
            documents.append((file, interpolate_tree(document, env, "", document.where, problems)))
    merged = _combine(documents, env, chain, sources)
    return None if merged is None else unique_entries(merged, problems.warn)


def _combine(documents: list[tuple[str, YMap]], env: Mapping[str, str], chain: tuple[str, ...], sources: Sources) -> YMap | None:
    merged: YMap | None = None
    for file, document in documents:
        document = apply_include(document, env, chain, sources.ctx, lambda *args: _load_project(sources, *args))
        document = apply_extends(document, file, env, sources)
        merged = drop_reset(document) if merged is None else merge(merged, document, ())
    return merged


def _load_project(sources: Sources, files: list[Path], directory: Path, env: Mapping[str, str],
                  chain: tuple[str, ...], where: Where, path: str) -> YMap | None:
    """An included project: its files, read as stack files a stack names, merged."""
    documents: list[tuple[str, Any]] = []
    for index, file in enumerate(files):
        found = sources.documents(file, env, directory, where, path)
        if found is None:
            return None
        documents.extend((str(file), document) for document in found)
        if index == 0:
            chain = (*chain, str(file))
    return _combine(documents, env, chain, sources) if documents else None
