"""`lab.py collect`: students' exports merged into one logdir, hostile or broken uploads refused;
and the refusals of `lab.py runs --export`, the command that writes those archives.

The good archives hold a real run (Exercise A's quick run, shared with the lesson tests), exported
by `lab.py runs --export` for two students whose runs carry the same names. The bad ones are
hand-made: each is the attack or the breakage being tested.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from labkit.instructor import catalog, collect
from labtest import REPO, files_under

LAB = REPO / "scripts" / "lab.py"


def invoke(main, capsys, args) -> tuple[int, str, str]:
    """A command's main(ARGS) in this process: (exit code, stdout, stderr)."""
    try:
        code = main([str(arg) for arg in args])
    except SystemExit as exit_info:  # argparse's own refusals
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


def lab_collect(capsys, *args) -> tuple[int, str, str]:
    return invoke(collect.main, capsys, args)


def lab_runs(capsys, *args) -> tuple[int, str, str]:
    return invoke(catalog.main, capsys, args)


@pytest.fixture(scope="module")
def exports(exercise_a_quick_run, tmp_path_factory) -> dict:
    """alice.zip and bob.tar.gz, each an export of the same real run, and the runs root they came from."""
    root = exercise_a_quick_run.parents[2]
    folder = tmp_path_factory.mktemp("exports")
    archives = {}
    for student, name in (("alice", "alice.zip"), ("bob", "bob.tar.gz")):
        assert catalog.main([str(root), "--export", str(folder / name), "--student", student]) == 0
        archives[student] = folder / name
    return {"root": root, "run": exercise_a_quick_run, **archives}


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files_under(folder)}


def run_json_member(run_name: str = "some-run") -> tuple[str, bytes]:
    return f"lesson_1/exercise_a/{run_name}/run.json", b'{"status": "finished"}'


def tar_with(path: Path, *members: tarfile.TarInfo, mode: str = "w") -> Path:
    name, data = run_json_member()
    with tarfile.open(path, mode) as archive:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
        for member in members:
            payload = b"pwned\n" if member.isfile() else None
            if payload is not None:
                member.size = len(payload)
            archive.addfile(member, io.BytesIO(payload) if payload else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


# ---------------------------------------------------------------------------------------------
# The round trip


@pytest.mark.slow
def test_two_students_with_the_same_run_names_land_side_by_side(exports, tmp_path):
    from labkit.tblogs import read_scalars

    into = tmp_path / "class"
    result = subprocess.run(
        [sys.executable, str(LAB), "collect", str(exports["alice"]), str(exports["bob"]), "--into", "class"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "STUDENT  RUNS  SOURCE",
        f"alice       1  {exports['alice']}",
        f"bob         1  {exports['bob']}",
        "",
        f"View them: python scripts/lab.py tensorboard {into}",
    ]
    run = exports["run"]
    relative = run.relative_to(exports["root"])
    source_logs = {name: data for name, data in tree(run).items() if not name.endswith(".keras")}
    for student in ("alice", "bob"):
        assert tree(into / student / relative) == source_logs
    assert sorted(p.name for p in into.iterdir()) == ["alice", "bob", "collected.json"]
    scalars = read_scalars(into)
    original = read_scalars(run)
    for student in ("alice", "bob"):
        mine = scalars[scalars["run"] == f"{student}/{relative.as_posix()}"]
        for (split, tag), points in original.groupby(["split", "tag"]):
            steps = mine[(mine["split"] == split) & (mine["tag"] == tag)]["step"].tolist()
            assert steps == points["step"].tolist(), (student, split, tag)
    ledger = json.loads((into / "collected.json").read_text())
    assert [(e["student"], e["runs"], e["source"]) for e in ledger["inputs"]] == [
        ("alice", 1, str(exports["alice"])),
        ("bob", 1, str(exports["bob"])),
    ]


@pytest.mark.slow
def test_the_same_archive_again_is_skipped_and_another_for_the_same_name_gets_its_own(exports, tmp_path, capsys):
    into = tmp_path / "class"
    assert lab_collect(capsys, exports["alice"], "--into", into)[0] == 0
    before = tree(into)
    code, out, err = lab_collect(capsys, exports["alice"], "--into", into)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"{exports['alice']}: already collected as alice, skipped"
    assert tree(into) == before
    # Another upload by the same student, with other bytes: the same runs as a tar.gz. (A second
    # zip made within the same second would be byte-identical, and rightly "already collected".)
    second = tmp_path / "alice-again.tar.gz"
    assert catalog.main([str(exports["root"]), "--export", str(second), "--student", "alice"]) == 0
    capsys.readouterr()
    code, out, _ = lab_collect(capsys, second, "--into", into)
    assert code == 0 and f"alice-2     1  {second}" in out.splitlines()
    assert sorted(p.name for p in into.iterdir()) == ["alice", "alice-2", "collected.json"]


@pytest.mark.slow
def test_a_folder_of_runs_is_collected_under_its_name(exports, tmp_path, capsys):
    folder = tmp_path / "carol runs"
    shutil.copytree(exports["root"], folder, copy_function=os.link)
    into = tmp_path / "class"
    code, out, _ = lab_collect(capsys, folder, "--into", into)
    assert code == 0 and f"carol_runs     1  {folder}" in out.splitlines()
    assert tree(into / "carol_runs") == tree(folder)


# ---------------------------------------------------------------------------------------------
# Hostile and broken uploads


def evil_zip(path: Path) -> Path:
    name, data = run_json_member()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, data)
        archive.writestr("../evil", b"pwned\n")
    return path


HOSTILE = {
    "tar-dotdot": (lambda p: tar_with(p / "dotdot.tar", entry("../evil")), "member '../evil' climbs out with '..'"),
    "tar-absolute": (
        lambda p: tar_with(p / "absolute.tar", entry(str(p / "abs_evil"))),
        "has an absolute path",
    ),
    "tar-symlink": (
        lambda p: tar_with(p / "link.tar.gz", entry("lesson_1/etc", tarfile.SYMTYPE, "/etc"), mode="w:gz"),
        "member 'lesson_1/etc' is a symlink",
    ),
    "zip-dotdot": (lambda p: evil_zip(p / "dotdot.zip"), "member '../evil' climbs out with '..'"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_a_hostile_archive_is_refused_whole_and_nothing_lands_outside(tmp_path, capsys, case):
    make, reason = HOSTILE[case]
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    archive = make(uploads)
    into = tmp_path / "deep" / "class"
    code, out, err = lab_collect(capsys, archive, "--into", into)
    assert code == 2 and out == ""
    skipped, final = err.splitlines()
    assert skipped.startswith(f"lab.py collect: skipped {archive}: ") and reason in skipped, skipped
    assert final == "lab.py collect: error: nothing collected from 1 input(s)"
    # Not even --into was made: the archive was refused before anything was written.
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == [
        Path("uploads"),
        Path("uploads") / archive.name,
    ]


@pytest.mark.slow
def test_broken_and_foreign_uploads_are_skipped_while_a_good_one_is_collected(exports, tmp_path, capsys):
    truncated = tmp_path / "dave.tar.gz"
    truncated.write_bytes(exports["bob"].read_bytes()[: exports["bob"].stat().st_size // 2])
    foreign = tmp_path / "holiday.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("photo.jpg", os.urandom(2048))
        archive.writestr("notes.txt", os.urandom(512))
    hostile = evil_zip(tmp_path / "mallory.zip")
    essay = tmp_path / "essay.docx"
    essay.write_bytes(os.urandom(4096))
    into = tmp_path / "class"
    code, out, err = lab_collect(capsys, truncated, foreign, exports["alice"], hostile, essay, "--into", into)
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 4 and lines[3] == f"lab.py collect: skipped {essay}: not a zip or tar archive"
    assert lines[0].startswith(f"lab.py collect: skipped {truncated}: a truncated or corrupt archive (")
    assert lines[1] == f"lab.py collect: skipped {foreign}: no run.json inside: not an archive of runs"
    assert lines[2] == f"lab.py collect: skipped {hostile}: member '../evil' climbs out with '..'"
    assert sorted(p.name for p in into.iterdir()) == ["alice", "collected.json"], "no staging folder is left"
    assert not (tmp_path / "evil").exists()
    assert [e["student"] for e in json.loads((into / "collected.json").read_text())["inputs"]] == ["alice"]


@pytest.mark.slow
def test_an_upload_over_the_caps_is_refused(exports, tmp_path, capsys, monkeypatch):
    into = tmp_path / "class"
    monkeypatch.setattr(collect, "MAX_TOTAL_BYTES", 1000)
    code, _, err = lab_collect(capsys, exports["alice"], "--into", into)
    assert code == 2 and "bytes, more than the 1,000 allowed" in err.splitlines()[0]
    monkeypatch.setattr(collect, "MAX_TOTAL_BYTES", 2 * 10**9)
    monkeypatch.setattr(collect, "MAX_MEMBERS", 3)
    code, _, err = lab_collect(capsys, exports["bob"], "--into", into)
    assert code == 2 and "members, more than the 3 allowed" in err.splitlines()[0]
    assert not into.exists()


# ---------------------------------------------------------------------------------------------
# Bad arguments


def test_bad_arguments_exit_2_and_write_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    archive = tar_with(tmp_path / "good.tar")
    cases = [
        ((archive,), "lab.py collect: error: the following arguments are required: --into"),
        (("--into", "class"), "lab.py collect: error: give at least one student archive or folder to collect"),
        ((archive, "--into", a_file), f"lab.py collect: error: --into {a_file} is a file, not a folder"),
    ]
    for args, message in cases:
        code, out, err = lab_collect(capsys, *args)
        assert (code, out, err) == (2, "", message + "\n")
    code, out, err = lab_collect(capsys, tmp_path / "missing.zip", "--into", "class")
    assert (
        code == 2
        and err.splitlines()[0] == f"lab.py collect: skipped {tmp_path / 'missing.zip'}: no such file or folder"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.tar", "notes.txt"]


def test_export_refuses_an_existing_file_and_an_empty_selection(tmp_path, capsys):
    root = tmp_path / "runs"
    root.mkdir()
    existing = tmp_path / "old.zip"
    existing.write_bytes(b"the student's earlier upload")
    code, out, err = lab_runs(capsys, root, "--export", existing)
    assert (code, out) == (2, "") and err == (
        f"lab.py runs: error: --export {existing}: that file already exists; choose another name or remove it first\n"
    )
    assert existing.read_bytes() == b"the student's earlier upload"
    code, out, err = lab_runs(capsys, root, "--export", tmp_path / "new.tgz")
    assert (code, err) == (2, f"lab.py runs: error: no runs to export under {root} (with these filters)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.zip", "runs"]
