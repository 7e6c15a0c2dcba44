"""The commit a row records: "-dirty" for changed code, not for a committed result store that the
sweep itself is writing into."""

from __future__ import annotations

import subprocess

from hsd.execute import git_commit


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_dirty_means_changed_code_not_a_changed_result_store(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "results" / "store").mkdir(parents=True)
    (tmp_path / "pkg" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "store" / "results.jsonl").write_text("{}\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    head = git_commit(tmp_path / "pkg")
    assert len(head) == 12 and not head.endswith("-dirty")
    (tmp_path / "results" / "store" / "results.jsonl").write_text("{}\n{}\n")  # a sweep appends
    assert git_commit(tmp_path / "pkg") == head
    (tmp_path / "pkg" / "code.py").write_text("x = 2\n")
    assert git_commit(tmp_path / "pkg") == head + "-dirty"
