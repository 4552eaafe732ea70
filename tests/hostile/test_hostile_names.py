"""Hostile file names and file systems, through the real CLI (the installed console script).

* names with non-UTF-8 bytes, a newline, a tab, quotes, a backslash, ``%``, spaces, leading
  dashes (``-rf.jpg``, ``--help.jpg``), CJK, and names near NAME_MAX (240 and 251 bytes), through
  scan -> verify --fix -> dedup -> shard (copy and --resize-short) -> shards check -> loader check;
  a SRC folder whose name starts with a dash;
* symlink loops (a pair, and a folder link to its parent), symlinks leading outside the tree (a
  file and a folder): rejected as ``symlink_outside``, taken with ``--follow-symlinks``;
* files that vanish or change between scan, verify and shard: verify says ``missing``; shard
  leaves a changed source out by size or mtime (with the reason), and one rewritten behind its
  back (same size, mtime set back) is caught by ``imgnet shards check`` (sha256);
* unreadable folders and files (``chmod 000``). As root, chmod does not stop reads, so the
  commands run with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped from their bounding set
  (``prctl(PR_CAPBSET_DROP)``: root then obeys permission bits); the test skips, saying why, when
  that cannot be done either.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Callable

import pytest

from imgnet_tools.manifest.parquet import read_table
from tests import imagegen

IMGNET = str(Path(sys.executable).with_name("imgnet"))
KEY_RE = re.compile(r"[A-Za-z0-9_%.-]+")
ODD_NAMES = [b"plain.jpg", b"new\nline.jpg", b"tab\there.jpg", b"-rf.jpg", b"--help.jpg", b"sp ace.jpg",
             b"quote'\".jpg", b"back\\slash.jpg", b"pct%41.jpg", "日本.jpg".encode(), b"x" * 240 + b".jpg"]


def imgnet(*args: str | Path, cwd: Path, preexec: Callable[[], None] | None = None, ok: bool = True
           ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([IMGNET, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**os.environ, "IMGNET_LOG_DIR": str(cwd / "logs")}, preexec_fn=preexec)
    if ok:
        assert proc.returncode == 0, f"imgnet {args}: {proc.stdout}{proc.stderr}"
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    return proc


def rows(manifest: Path) -> dict[bytes, dict[str, Any]]:
    """Manifest rows by the file's base name as bytes (``\\xNN`` escapes of non-UTF-8 names undone)."""
    out = {}
    for row in read_table(manifest, "manifest").to_pylist():
        name = os.path.basename(row["source_path"]).encode("utf-8")
        out[name.decode("unicode_escape").encode("latin-1") if b"\\x" in name else name] = row
    return out


def test_odd_names_through_every_stage(tmp_path: Path) -> None:
    folder = tmp_path / "src" / "n01440764"
    folder.mkdir(parents=True)
    raw = os.fsencode(folder) + b"/"
    for i, name in enumerate(ODD_NAMES):
        with open(raw + name, "wb") as fh:
            fh.write(imagegen.jpeg_bytes(i, (64, 48)))
    with open(raw + b"y" * 251 + b".png", "wb") as fh:  # 255 bytes: its fixed copy must still get a name
        fh.write(imagegen.encode(imagegen.picture(50, (64, 48)), "PNG"))
    with open(raw + b"caf\xe9_latin1.jpg", "wb") as fh:
        fh.write(imagegen.jpeg_bytes(60, (64, 48)))
    before = imagegen.tree_hashes(tmp_path / "src")
    imgnet("scan", "src", "--out", "work", "-q", cwd=tmp_path)
    imgnet("verify", "work/manifest.parquet", "--fix", "fixed", "-q", cwd=tmp_path)
    imgnet("dedup", "work/manifest.parquet", "-q", cwd=tmp_path)
    got = rows(tmp_path / "work" / "manifest.parquet")
    assert got.pop(b"caf\xe9_latin1.jpg")["reason"] == "non_utf8_name"
    assert {n: r["status"] for n, r in got.items()} == {**{n: "ok" for n in ODD_NAMES}, b"y" * 251 + b".png": "fixed"}
    keys = [r["key"] for r in got.values()]
    assert len(set(keys)) == len(keys) and all(KEY_RE.fullmatch(k) and len(k) <= 200 for k in keys), keys
    assert Path(got[b"y" * 251 + b".png"]["path"]).is_file()
    for kind, extra in (("copy", []), ("resize", ["--resize-short", "32"])):
        shard = json.loads(imgnet("shard", "work/manifest.parquet", "--out", kind, *extra, "-q", "--json",
                                  cwd=tmp_path).stdout)
        assert shard["samples"] == len(got) and shard["failed"] == []
        imgnet("shards", "check", kind, "-q", cwd=tmp_path)
        assert json.loads(imgnet("loader", "check", kind, "-q", "--json", cwd=tmp_path).stdout)["ok"]
        for tar in (tmp_path / kind).glob("*.tar"):
            with tarfile.open(tar) as archive:
                for member in archive.getmembers():
                    assert member.isfile() and KEY_RE.fullmatch(member.name) and len(member.name) < 100, member.name
                    if member.name.endswith(".json"):  # the name, newline and all, kept in the sample's record
                        meta = json.loads(archive.extractfile(member).read())  # type: ignore[union-attr]
                        assert meta["path"].startswith("n01440764/")
    assert imagegen.tree_hashes(tmp_path / "src") == before


def test_a_src_folder_named_like_an_option(tmp_path: Path) -> None:
    imagegen.make_imagefolder(tmp_path / "-rf", ["n01440764"], per_class=3)
    proc = imgnet("scan", "--out", "work", "--json", "-q", "--", "-rf", cwd=tmp_path)
    assert json.loads(proc.stdout)["status"] == {"pending": 3}


def test_symlink_loops_and_links_out_of_the_tree(tmp_path: Path) -> None:
    folder = tmp_path / "src" / "n01440764"
    folder.mkdir(parents=True)
    (folder / "real.jpg").write_bytes(imagegen.jpeg_bytes(1, (64, 48)))
    os.symlink("loop_b.jpg", folder / "loop_a.jpg")
    os.symlink("loop_a.jpg", folder / "loop_b.jpg")
    os.symlink("..", folder / "parent_loop")
    os.symlink("real.jpg", folder / "inside_link.jpg")  # stays inside: followed
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(imagegen.jpeg_bytes(2, (64, 48)))
    os.symlink(outside / "secret.jpg", folder / "file_out.jpg")
    os.symlink(outside, folder / "folder_out")
    imgnet("scan", "src", "--out", "work", "-q", cwd=tmp_path)
    got = {n.decode(): (r["status"], r["reason"]) for n, r in rows(tmp_path / "work" / "manifest.parquet").items()}
    assert got == {"real.jpg": ("pending", None), "inside_link.jpg": ("pending", None),
                   "loop_a.jpg": ("rejected", "symlink_loop"), "loop_b.jpg": ("rejected", "symlink_loop"),
                   "parent_loop": ("rejected", "symlink_loop"), "file_out.jpg": ("rejected", "symlink_outside"),
                   "folder_out": ("rejected", "symlink_outside")}
    imgnet("scan", "src", "--out", "followed", "--follow-symlinks", "-q", cwd=tmp_path)
    followed = {n.decode(): (r["status"], r["reason"]) for n, r in rows(tmp_path / "followed" / "manifest.parquet").items()}
    assert followed["file_out.jpg"] == ("pending", None) and followed["secret.jpg"] == ("pending", None)
    assert followed["loop_a.jpg"] == ("rejected", "symlink_loop")


def test_files_that_vanish_or_change_between_stages(tmp_path: Path) -> None:
    folder = tmp_path / "src" / "n01440764"
    folder.mkdir(parents=True)
    for i in range(8):
        (folder / f"f{i}.jpg").write_bytes(imagegen.jpeg_bytes(i, (64, 48)))
    imgnet("scan", "src", "--out", "work", "-q", cwd=tmp_path)
    (folder / "f0.jpg").unlink()  # gone before verify
    imgnet("verify", "work/manifest.parquet", "-q", cwd=tmp_path)
    assert rows(tmp_path / "work" / "manifest.parquet")[b"f0.jpg"]["reason"] == "missing"
    (folder / "f1.jpg").unlink()  # gone before shard
    with open(folder / "f2.jpg", "ab") as fh:  # grew
        fh.write(b"\0" * 10)
    st = (folder / "f3.jpg").stat()  # touched
    os.utime(folder / "f3.jpg", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    st = (folder / "f4.jpg").stat()  # rewritten behind the manifest's back: same size, mtime set back
    other = imagegen.jpeg_bytes(40, (64, 48), quality=95)
    (folder / "f4.jpg").write_bytes((other + b"\0" * st.st_size)[:st.st_size])
    os.utime(folder / "f4.jpg", ns=(st.st_atime_ns, st.st_mtime_ns))
    shard = json.loads(imgnet("shard", "work/manifest.parquet", "--out", "shards", "-q", "--json", cwd=tmp_path).stdout)
    reasons = {f["key"].rsplit("-", 1)[1]: f["reason"] for f in shard["failed"]}
    assert reasons == {"f1": "unreadable: No such file or directory",
                       "f2": "changed since scan: size or mtime differs from the manifest",
                       "f3": "changed since scan: size or mtime differs from the manifest"}
    # copy mode trusts an unchanged size and mtime (make-style); the sha256 check of every member
    # in `shards check` catches the rewrite
    check = imgnet("shards", "check", "shards", "-q", "--json", cwd=tmp_path, ok=False)
    assert check.returncode == 1
    problems = json.loads(check.stdout)["problems"]
    assert problems and all("f4" in p for p in problems) and any("sha256" in p for p in problems), problems


# --- unreadable folders --------------------------------------------------------------------------

PR_CAPBSET_DROP = 24
CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 1, 2


def _drop_dac() -> None:
    """In the child before exec: leave root's permission overrides out of what exec gives it."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.fixture
def obeys_permissions(tmp_path: Path) -> Callable[[], None] | None:
    """What makes a child process obey ``chmod 000`` (None: it does already); skips when nothing can."""
    probe = tmp_path / "probe"
    probe.write_text("x")
    probe.chmod(0)
    try:
        if os.geteuid() != 0:
            return None
        try:
            proc = subprocess.run([sys.executable, "-c", f"open({str(probe)!r}).read()"], preexec_fn=_drop_dac,
                                  capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"running as root, and dropping CAP_DAC_OVERRIDE failed ({exc}): chmod 000 cannot make "
                        "a file unreadable here")
        if proc.returncode == 0 or b"PermissionError" not in proc.stderr:
            pytest.skip("running as root with a DAC override that cannot be dropped: chmod 000 does not stop reads")
        return _drop_dac
    finally:
        probe.unlink()


def test_unreadable_folders_and_files_are_rows(tmp_path: Path, obeys_permissions: Callable[[], None] | None) -> None:
    src = tmp_path / "src"
    imagegen.make_imagefolder(src, ["n01440764", "n01443537", "n01484850"], per_class=3)
    locked_dir, locked_file = src / "n01443537", src / "n01440764" / "n01440764_2.JPEG"
    later = src / "n01484850" / "n01484850_1.JPEG"
    locked_dir.chmod(0)
    locked_file.chmod(0)
    try:
        imgnet("scan", "src", "--out", "work", "-q", cwd=tmp_path, preexec=obeys_permissions)
        later.chmod(0)  # unreadable from verify on
        imgnet("verify", "work/manifest.parquet", "-q", cwd=tmp_path, preexec=obeys_permissions)
        got = {os.path.relpath(r["source_path"], src): (r["status"], r["reason"])
               for r in read_table(tmp_path / "work" / "manifest.parquet", "manifest").to_pylist()}
        assert got.pop("n01443537") == ("rejected", "unreadable")  # the folder itself: its files cannot be listed
        assert got.pop("n01440764/n01440764_2.JPEG") == ("rejected", "unreadable")
        assert got.pop("n01484850/n01484850_1.JPEG") == ("rejected", "unreadable")
        assert set(got.values()) == {("ok", None)} and len(got) == 4
        later.chmod(0o644)  # readable again: a re-scan refreshes the row, verify then checks it
        imgnet("scan", "src", "--out", "work", "-q", cwd=tmp_path, preexec=obeys_permissions)
        imgnet("verify", "work/manifest.parquet", "-q", cwd=tmp_path, preexec=obeys_permissions)
        again = {os.path.relpath(r["source_path"], src): r["status"]
                 for r in read_table(tmp_path / "work" / "manifest.parquet", "manifest").to_pylist()}
        assert again["n01484850/n01484850_1.JPEG"] == "ok"
    finally:
        for path in (locked_dir, locked_file, later):
            path.chmod(0o755 if path.is_dir() else 0o644)
