"""The one atomic writer (ebmgraph.store.atomic.atomic_path)."""

import os
import threading

import pytest

from ebmgraph.store.atomic import atomic_path


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "file.txt"
    with atomic_path(path) as temporary:
        assert temporary.parent == path.parent and temporary.exists() and temporary != path
        temporary.write_text("new")
    assert path.read_text() == "new" and _leftovers(path.parent) == []
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as if opened for writing, not mkstemp's 0o600


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "file.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_path(path) as temporary:
            temporary.write_text("half")
            raise RuntimeError("crash")
    assert path.read_text() == "old" and _leftovers(tmp_path) == []


def test_interleaved_writers_get_their_own_temporary_and_the_last_to_finish_wins(tmp_path):
    path = tmp_path / "file.txt"
    with atomic_path(path) as first:
        with atomic_path(path) as second:
            assert first != second
            first.write_text("first")
            second.write_text("second")
        assert path.read_text() == "second"
    assert path.read_text() == "first" and _leftovers(tmp_path) == []


def test_concurrent_writers_never_expose_a_partial_file(tmp_path):
    path = tmp_path / "file.bin"
    payloads = [bytes([i]) * 200_000 for i in range(4)]
    seen, errors = set(), []

    def write(payload):
        try:
            for _ in range(20):
                with atomic_path(path) as temporary:
                    temporary.write_bytes(payload)
        except Exception as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        if path.exists():
            seen.add(path.read_bytes())
    for thread in threads:
        thread.join()
    assert not errors
    assert seen <= set(payloads) and path.read_bytes() in payloads and _leftovers(tmp_path) == []
