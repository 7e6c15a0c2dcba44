"""The one "can this path be written" check knows a file target from a folder target, and a
result file is replaced whole."""

from __future__ import annotations

import os

import pytest
from harness_helpers import call_main

from hsd.paths import unwritable_reason, write_atomic


def test_a_file_target_may_exist_and_be_overwritten_but_not_be_a_folder(tmp_path):
    existing = tmp_path / "result.json"
    existing.write_text("{}")
    assert unwritable_reason(existing, kind="file") is None  # a rerun overwrites it
    assert unwritable_reason(tmp_path / "new" / "deeper" / "r.json", kind="file") is None
    assert unwritable_reason(tmp_path, kind="file") == f"{tmp_path} is a folder, not a file"
    assert (
        unwritable_reason(existing / "x.json", kind="file") == f"{existing} is a file, not a folder"
    )


def test_a_folder_target_may_exist_but_not_be_a_file(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert unwritable_reason(tmp_path) is None and unwritable_reason(tmp_path / "a" / "b") is None
    assert unwritable_reason(afile) == f"{afile} is a file, not a folder"
    assert unwritable_reason(afile / "sub") == f"{afile} is a file, not a folder"
    assert "too long" in unwritable_reason(tmp_path / ("a" * 300), kind="file")
    with pytest.raises(ValueError, match="kind"):
        unwritable_reason(tmp_path, kind="dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_is_refused_for_both_kinds(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    (ro / "r.json").write_text("{}")
    ro.chmod(0o500)
    try:
        assert unwritable_reason(ro / "r.json", kind="file") == f"{ro} is not writable"
        assert unwritable_reason(ro / "sub") == f"{ro} is not writable"
    finally:
        ro.chmod(0o700)


def test_write_atomic_replaces_whole_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "r.json"
    write_atomic(path, "first")
    write_atomic(path, "second")
    assert path.read_text() == "second"
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_train_cli_names_a_folder_out_as_a_folder(data_env, tmp_path):
    from hsd.train import main

    cp = call_main(
        main, ["--method", "hsd", "--dataset", "n-digits", "--T", "2", "--out", tmp_path]
    )
    assert cp.returncode == 2
    assert f"--out {tmp_path}: {tmp_path} is a folder, not a file; name a .json file" in cp.stderr


def test_train_cli_help_says_the_result_is_overwritten(capsys):
    from hsd.train import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "an existing file is overwritten atomically" in text
