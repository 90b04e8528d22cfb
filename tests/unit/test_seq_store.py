from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from orchestrator.publishing.seq_store import SeqStore


def test_a_missing_file_means_nothing_was_sent_yet(tmp_path: Path) -> None:
    assert SeqStore(tmp_path / "seq").load() == 0


def test_saved_seq_is_loaded_by_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "state" / "seq"  # the directory is created on first save
    SeqStore(path).save(41)
    SeqStore(path).save(1234)
    assert SeqStore(path).load() == 1234
    assert path.read_text() == "1234\n"


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = SeqStore(tmp_path / "seq")
    for seq in range(5):
        store.save(seq)
    assert [p.name for p in tmp_path.iterdir()] == ["seq"]


@pytest.mark.parametrize("content", [pytest.param("", id="empty"), pytest.param("12a\n", id="garbage")])
def test_an_unreadable_file_counts_as_zero_and_is_logged(tmp_path: Path, content: str) -> None:
    path = tmp_path / "seq"
    path.write_text(content)
    with capture_logs() as logs:
        assert SeqStore(path).load() == 0
    assert [entry["event"] for entry in logs] == ["seq_file_unreadable"]
