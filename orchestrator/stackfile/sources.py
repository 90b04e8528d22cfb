"""The stack files that `include:` and `extends: {file: ...}` name, read within bounds.

Such a file is a file a stack names (stackfile/files.py): a regular file, never under /proc, /sys
or /dev, at most `max_file_size` bytes; one under a host system path is a dangerous option
(refused before it is read under `deny`). On top of that a load reads at most
MAX_NAMED_STACK_FILES of them, MAX_NAMED_STACK_BYTES_FACTOR x `max_file_size` bytes in all.

Each file is read once per environment it is interpolated with, and remembered with the
directory its relative paths resolve against (`Context.base_dirs`): an included project's
directory, or an extended file's own directory (compose-go resolves them the same way).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.stackfile.dangerous import host_path_note
from orchestrator.stackfile.files import MissingFile, NamedFileError, read_named_file
from orchestrator.stackfile.interpolate import interpolate_tree
from orchestrator.stackfile.limits import MAX_NAMED_STACK_BYTES_FACTOR, MAX_NAMED_STACK_FILES
from orchestrator.stackfile.problems import Where
from orchestrator.stackfile.reader import Context
from orchestrator.stackfile.yamlread import YMap, read_documents


@dataclass(slots=True)
class Sources:
    #: Its `base_dirs` learns the base directory of each file read here.
    ctx: Context
    files_read: int = 0
    bytes_read: int = 0
    _cache: dict[tuple[str, int], list[YMap] | None] = field(default_factory=dict)

    def documents(self, path: Path, env: Mapping[str, str], base_dir: Path, where: Where, key_path: str) -> list[YMap] | None:
        """The interpolated documents of the stack file `path`, named at `where` / `key_path`;
        None (with the problem recorded) when it cannot be used."""
        name = str(path)
        key = (name, id(env))
        if key not in self._cache:
            self._cache[key] = self._read(path, env, where, key_path)
            self.ctx.base_dirs.setdefault(name, base_dir)
        return self._cache[key]

    def _read(self, path: Path, env: Mapping[str, str], where: Where, key_path: str) -> list[YMap] | None:
        problems, limits = self.ctx.problems, self.ctx.limits
        note = host_path_note(str(path))
        if note:
            self.ctx.dangerous(where, key_path, f"reads a stack file from {note}")
            if limits.dangerous_options == "deny":
                return None
        if self.files_read >= MAX_NAMED_STACK_FILES:
            problems.error(where, key_path, f"{path}: a stack may read at most {MAX_NAMED_STACK_FILES} files through include and extends")
            return None
        try:
            text = read_named_file(path, limits.max_file_size)
        except MissingFile:
            problems.error(where, key_path, f"file {path} does not exist")
            return None
        except NamedFileError as exc:
            problems.error(where, key_path, f"cannot read the file: {exc}")
            return None
        self.files_read += 1
        self.bytes_read += len(text)
        budget = MAX_NAMED_STACK_BYTES_FACTOR * limits.max_file_size
        if self.bytes_read > budget:
            problems.error(where, key_path, f"{path}: the files read through include and extends are over {budget} bytes in all")
            return None
        documents = read_documents(text, str(path), problems, limits)
        if documents is None:
            return None
        return [interpolate_tree(document, env, "", document.where, problems) for document in documents]
