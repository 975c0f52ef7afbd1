"""Tests for `pipeline.links.documents`: documents named stably, what cannot be read named
with its reason (symlinks, pipes, permissions), names made printable, entities gathered."""

from __future__ import annotations

import ast
import errno
import json
import os
import shutil
import socket
import tempfile
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from pipeline.links.documents import (
    discover_documents,
    extract_document_links,
    extract_links,
    printable,
    read_document,
)
from pipeline.links.extract import DocumentError

LIST = """# Papers

- [Qwen2-VL](https://arxiv.org/pdf/2409.12191v2) see also https://hf-mirror.com/Qwen/Qwen2-VL-72B
- [NVLM: Open Frontier-Class Multimodal LLMs](https://zhuanlan.zhihu.com/p/720542712)
- [bad](https://arxiv.org/abs/2413.99999) [collection](https://huggingface.co/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c)
"""

T = TypeVar("T")


def within_seconds(call: Callable[[], T], seconds: float = 10.0) -> T:
    """`call()`, failing the test (not hanging it) if it has not returned in time."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # handed to the test thread
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still running after {seconds} s")
    if failure:
        raise failure[0]
    return result[0]


def names(paths: list[Path]) -> list[str]:
    return [name for name, _ in within_seconds(lambda: discover_documents(paths))]


def errors_of(folder: Path) -> dict[str, str | None]:
    """Document name -> error, for every document `extract_links` finds in `folder`."""
    extraction = within_seconds(lambda: extract_links([folder]))
    return {doc.name: doc.error for doc in extraction.documents}


# --- naming ------------------------------------------------------------------------------


def test_documents_are_named_relative_to_the_folder_given(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.md").write_text("x")
    (tmp_path / "b.txt").write_text("x")
    (tmp_path / "notes.pdf").write_bytes(b"%PDF")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "c.md").write_text("x")
    (tmp_path / "README.MD").write_text("x")
    assert names([tmp_path]) == ["README.MD", "b.txt", "sub/a.md"]
    assert names([tmp_path / "b.txt"]) == ["b.txt"]


def test_a_missing_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        discover_documents([tmp_path / "nope"])


def test_two_inputs_with_one_name_keep_both(tmp_path: Path) -> None:
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "list.md").write_text(folder)
    found = discover_documents([tmp_path / "x" / "list.md", tmp_path / "y" / "list.md"])
    assert [name for name, _ in found] == sorted(
        ["list.md", (tmp_path / "y" / "list.md").as_posix()]
    )


# --- symlinks ------------------------------------------------------------------------------


def test_dangling_and_looping_symlinks_are_listed_and_named_with_their_problem(
    tmp_path: Path,
) -> None:
    (tmp_path / "good.md").write_text("- [Qwen2-VL](https://arxiv.org/abs/2409.12191)\n")
    (tmp_path / "gone.md").symlink_to("deleted.md")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "gone.txt").symlink_to(tmp_path / "elsewhere" / "list.txt")
    (tmp_path / "self.md").symlink_to("self.md")
    (tmp_path / "ping.md").symlink_to("pong.md")
    (tmp_path / "pong.md").symlink_to("ping.md")
    # The suffix rule holds for links as for files; hidden entries stay hidden.
    (tmp_path / "gone").symlink_to("deleted")
    (tmp_path / ".gone.md").symlink_to("deleted.md")

    assert errors_of(tmp_path) == {
        "good.md": None,
        "gone.md": "dangling symlink -> deleted.md",
        "sub/gone.txt": f"dangling symlink -> {tmp_path / 'elsewhere' / 'list.txt'}",
        "self.md": "symlink loop",
        "ping.md": "symlink loop",
        "pong.md": "symlink loop",
    }
    extraction = extract_links([tmp_path])
    assert [link.occurrence.document for link in extraction.links] == ["good.md"]
    assert {doc.name for doc in extraction.errors} == {
        "gone.md",
        "sub/gone.txt",
        "self.md",
        "ping.md",
        "pong.md",
    }


def test_a_dangling_symlink_given_by_name_is_read_and_fails(tmp_path: Path) -> None:
    (tmp_path / "list.md").symlink_to("moved.md")
    found = discover_documents([tmp_path / "list.md"])
    assert [name for name, _ in found] == ["list.md"]
    document, links = extract_document_links(*found[0])
    assert (document.error, document.sha256, links) == ("dangling symlink -> moved.md", None, [])


def test_symlinks_to_documents_are_read(tmp_path: Path) -> None:
    (tmp_path / "real.md").write_text("- [x](https://arxiv.org/abs/2409.12191)\n")
    (tmp_path / "alias.md").symlink_to("real.md")
    assert errors_of(tmp_path) == {"alias.md": None, "real.md": None}


def test_symlinked_folders_that_loop_end(tmp_path: Path) -> None:
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "top.md").write_text("x")
    (tmp_path / "sub" / "a.md").write_text("x")
    (tmp_path / "sub" / "deeper" / "b.md").write_text("x")
    (tmp_path / "here").symlink_to(".", target_is_directory=True)
    (tmp_path / "sub" / "up").symlink_to("..", target_is_directory=True)
    (tmp_path / "sub" / "deeper" / "root").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "again").symlink_to("sub", target_is_directory=True)  # read as `sub/`
    assert names([tmp_path]) == ["sub/a.md", "sub/deeper/b.md", "top.md"]


def test_folders_that_link_to_each_other_end(tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{folder}.md").write_text("x")
    (tmp_path / "a" / "to-b").symlink_to("../b", target_is_directory=True)
    (tmp_path / "b" / "to-a").symlink_to("../a", target_is_directory=True)
    assert names([tmp_path]) == ["a/a.md", "b/b.md"]
    assert names([tmp_path / "a"]) == ["a.md", "to-b/b.md"]


def test_a_folder_outside_the_tree_is_read_once_under_its_first_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "inner").mkdir(parents=True)
    (outside / "list.md").write_text("x")
    (outside / "inner" / "more.md").write_text("x")
    (outside / "inner" / "back").symlink_to(outside, target_is_directory=True)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "b-link").symlink_to(outside, target_is_directory=True)
    (docs / "a-link").symlink_to(outside, target_is_directory=True)
    assert names([docs]) == ["a-link/inner/more.md", "a-link/list.md"]


def test_a_deep_folder_tree_is_read(tmp_path: Path) -> None:
    folder = tmp_path
    for _ in range(1500):  # deeper than Python's recursion limit
        folder = folder / "d"
        folder.mkdir()
    (folder / "deep.md").write_text("x")
    try:
        assert names([tmp_path]) == ["d/" * 1500 + "deep.md"]
    finally:  # from the bottom up: pytest's clean-up (shutil.rmtree) recurses per level
        (folder / "deep.md").unlink()
        while folder != tmp_path:
            folder.rmdir()
            folder = folder.parent


def test_a_folder_given_as_a_symlink_is_read(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "list.md").write_text("x")
    (tmp_path / "link").symlink_to("real", target_is_directory=True)
    assert names([tmp_path / "link"]) == ["list.md"]


# --- what is not a readable file ---------------------------------------------------------


def test_a_pipe_with_a_documents_name_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.md")
    (tmp_path / "list.md").write_text("x")
    assert errors_of(tmp_path) == {"list.md": None, "pipe.md": "not a regular file (a pipe)"}


def test_a_link_to_a_device_is_refused(tmp_path: Path) -> None:
    (tmp_path / "zero.md").symlink_to("/dev/zero")
    assert errors_of(tmp_path) == {"zero.md": "not a regular file (a device)"}


def test_a_socket_with_a_documents_name_is_refused(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(tmp_path / "socket.md"))
        assert errors_of(tmp_path) == {"socket.md": "not a regular file (a socket)"}


def test_a_file_without_read_permission_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root here, for whom permissions do not apply: the refusal is simulated
    # where the kernel would give it.
    (tmp_path / "list.md").write_text("x")
    (tmp_path / "secret.md").write_text("x")
    real_open = os.open

    def refusing_open(path: Any, flags: int, *args: Any) -> int:
        if Path(path).name == "secret.md":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refusing_open)
    assert errors_of(tmp_path) == {"list.md": None, "secret.md": "cannot read: Permission denied"}


NOBODY = 65534


def _as_unprivileged(call: Callable[[], T]) -> T:
    """`call()` in a forked child that is not root (root reads whatever the permissions say),
    its result sent back as JSON. The code is already in memory: the child needs no access
    to the checkout."""
    if os.geteuid() != 0:
        return call()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write_end, json.dumps(call()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    assert data, "the unprivileged child sent nothing"
    result: T = json.loads(data)
    return result


def test_what_has_no_read_permission_is_named_for_real() -> None:
    root = Path(tempfile.mkdtemp(prefix="no-permission-"))
    try:
        root.chmod(0o755)  # the unprivileged reader may enter, not read what is closed
        (root / "secret.md").write_text("x")
        (root / "private").mkdir()
        (root / "private" / "a.md").write_text("x")
        for path in (root / "secret.md", root / "private"):
            path.chmod(0)
        assert _as_unprivileged(lambda: errors_of(root)) == {
            "private/": "cannot list folder: Permission denied",
            "secret.md": "cannot read: Permission denied",
        }
    finally:
        (root / "private").chmod(0o700)
        shutil.rmtree(root)


def test_a_folder_that_cannot_be_listed_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "hidden.md").write_text("x")
    (tmp_path / "list.md").write_text("x")
    real_scandir = os.scandir

    def refusing_scandir(path: Any) -> Any:
        if Path(path).name == "private":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    errors = errors_of(tmp_path)
    assert sorted(errors) == ["list.md", "private/"]
    assert errors["list.md"] is None
    assert errors["private/"] is not None  # not a file; as another user: permission denied


def test_a_folder_given_that_cannot_be_listed_is_named_by_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refusing_scandir(path: Any) -> Any:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    assert names([tmp_path]) == [f"{tmp_path.as_posix()}/"]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.mkdir(), "not a regular file (a folder)"),
        (lambda p: p.symlink_to(p.with_name("nowhere")), "dangling symlink -> "),
        (lambda p: p.symlink_to(p), "symlink loop"),
    ],
    ids=["folder", "dangling", "loop"],
)
def test_read_document_names_the_problem(
    tmp_path: Path, make: Callable[[Path], None], reason: str
) -> None:
    path = tmp_path / "list.md"
    make(path)
    with pytest.raises(DocumentError) as caught:
        read_document(path, "lists/list.md")
    assert caught.value.document == "lists/list.md"
    assert caught.value.reason.startswith(reason)


def test_read_document_reads_bytes_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "list.md"
    path.write_bytes(b"\xef\xbb\xbf# T\r\n\xff")
    assert read_document(path, "list.md") == b"\xef\xbb\xbf# T\r\n\xff"


# --- printable ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("lists/2024.md", "lists/2024.md"),
        ("论文 café 🎉.md", "论文 café 🎉.md"),
        ("a\nERROR forged line", "a\\nERROR forged line"),
        ("a\r\nb\tc", "a\\r\\nb\\tc"),
        ("\x1b[31mred\x1b[0m.md", "\\x1b[31mred\\x1b[0m.md"),
        ("bell\x07 nul\x00 del\x7f", "bell\\x07 nul\\x00 del\\x7f"),
        ("c1\x85\x9b", "c1\\x85\\x9b"),
        ("evil\u202egnp.md", "evil\\u202egnp.md"),
        ("\u2066iso\u2069 \u200emark\u200f \u061c", "\\u2066iso\\u2069 \\u200emark\\u200f \\u061c"),
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),
        ("not-utf8-\udcff.md", "not-utf8-\\udcff.md"),
        ("back\\slash", "back\\\\slash"),
        ("written \\n, not a newline", "written \\\\n, not a newline"),
        ("", ""),
    ],
)
def test_printable_escapes_control_characters(text: str, shown: str) -> None:
    assert printable(text) == shown


CONTROLS = frozenset({"Cc", "Zl", "Zp", "Cs"})
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def test_printable_leaves_no_control_and_can_be_read_back() -> None:
    text = "".join(map(chr, range(0x3000))) + "\ufeff\U0001f389\ud800\udcff"
    shown = printable(text)
    assert not [c for c in shown if unicodedata.category(c) in CONTROLS or c in BIDI_CONTROLS]
    # Escapes as Python writes them: the text comes back from a string literal.
    assert ast.literal_eval('"' + shown.replace('"', '\\"') + '"') == text
    assert printable("naïve 中文") == "naïve 中文"  # letters are no controls


# --- entities and links --------------------------------------------------------------------
