"""Version discovery has one owner: ASCII digit folders holding saved_model.pb, locally and on S3."""

from __future__ import annotations

from pathlib import Path

from mnistkit import versions


def test_only_ascii_digit_folders_with_the_marker_are_versions(tmp_path: Path) -> None:
    for name, marker in (("1", True), ("7", True), ("12", False), ("²", True), ("-3", True), (".staging", True),
                         ("1.0", True), ("٣", True)):
        (tmp_path / name).mkdir()
        if marker:
            (tmp_path / name / versions.MARKER_FILE).write_bytes(b"x")
    assert versions.local_versions(tmp_path) == [1, 7]
    assert versions.local_versions(tmp_path, complete=False) == [1, 7, 12]
    assert versions.latest_local(tmp_path) == 7
    assert versions.resolve_export(tmp_path) == (tmp_path / "7", 7)
    assert versions.resolve_export(tmp_path / "1") == (tmp_path / "1", 0)
    assert versions.resolve_export(tmp_path / "missing") is None
    assert versions.latest_local(tmp_path / "12") is None


def test_versions_from_object_keys() -> None:
    keys = ["m/export/1/saved_model.pb", "m/export/2/variables/v.index", "m/export/3/saved_model.pb",
            "m/export/²/saved_model.pb", "m/export/.staging/4/saved_model.pb", "m/other/5/saved_model.pb",
            "m/export/10/saved_model.pb"]
    assert versions.versions_from_keys(keys, "m/export") == [1, 3, 10]
    assert versions.versions_from_keys(["1/saved_model.pb"], "") == [1]
