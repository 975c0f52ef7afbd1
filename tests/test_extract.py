"""Tests for pipeline.links.extract: what a markdown document's links are, and their context.

Expected values are read off the markdown by hand, as GitHub renders it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.links.extract import DocumentError, Occurrence, decode_document, extract_document

Row = tuple[str, str, int, str, tuple[str, ...], str | None, bool, str]
"""(url, syntax, line, link_text, heading_path, item_date, is_main_link, annotation)"""


def md(*lines: str) -> str:
    """A markdown document from its lines (explicit, since indentation matters)."""
    return "\n".join(lines) + "\n"


def occurrences(markdown: str, **kwargs: int) -> list[Occurrence]:
    return list(extract_document(markdown, "doc.md", **kwargs))


def rows(markdown: str) -> list[Row]:
    return [
        (
            o.url,
            o.syntax,
            o.line,
            o.link_text,
            o.heading_path,
            o.item_date,
            o.is_main_link,
            o.annotation,
        )
        for o in occurrences(markdown)
    ]


def urls(markdown: str) -> list[tuple[str, str]]:
    return [(o.url, o.link_text) for o in occurrences(markdown)]


ANNOTATION = "intro text alt more code span arXiv:2409.12191 l arXiv:2409.00001"

CONSTRUCTS: list[tuple[str, str, list[Row]]] = [
    (
        "inline link in a dated list item",
        md(
            "# Papers",
            "",
            "## 2025",
            "",
            "- 2025.01 [MiniCPM-o](https://github.com/OpenBMB/MiniCPM-o) MiniCPM-V升级版。",
        ),
        [
            (
                "https://github.com/OpenBMB/MiniCPM-o",
                "inline",
                5,
                "MiniCPM-o",
                ("Papers", "2025"),
                "2025-01",
                True,
                "2025.01 MiniCPM-o MiniCPM-V升级版。",
            )
        ],
    ),
    (
        "a badge inside a link is two occurrences, the link first",
        md("- [![Stars](https://img.shields.io/github/stars/x/y)](https://github.com/x/y) Repo"),
        [
            ("https://github.com/x/y", "inline", 1, "Stars", (), None, True, "Stars Repo"),
            (
                "https://img.shields.io/github/stars/x/y",
                "image",
                1,
                "Stars",
                (),
                None,
                False,
                "Stars Repo",
            ),
        ],
    ),
    (
        "autolink",
        md("See <https://example.org/a>."),
        [
            (
                "https://example.org/a",
                "autolink",
                1,
                "https://example.org/a",
                (),
                None,
                False,
                "See https://example.org/a.",
            )
        ],
    ),
    (
        "full, collapsed and shortcut references; definitions are not occurrences",
        md(
            "Read [the paper][p], [Qwen][] and [Gemma].",
            "",
            "![logo][l]",
            "",
            "[p]: https://arxiv.org/abs/2409.12191",
            '[qwen]: https://qwenlm.github.io/ "Qwen"',
            "[Gemma]: <https://ai.google.dev/gemma>",
            "[l]: https://x.org/logo.png",
        ),
        [
            (
                "https://arxiv.org/abs/2409.12191",
                "reference",
                1,
                "the paper",
                (),
                None,
                False,
                "Read the paper, Qwen and Gemma.",
            ),
            (
                "https://qwenlm.github.io/",
                "reference",
                1,
                "Qwen",
                (),
                None,
                False,
                "Read the paper, Qwen and Gemma.",
            ),
            (
                "https://ai.google.dev/gemma",
                "reference",
                1,
                "Gemma",
                (),
                None,
                False,
                "Read the paper, Qwen and Gemma.",
            ),
            ("https://x.org/logo.png", "image", 3, "logo", (), None, False, "logo"),
        ],
    ),
    (
        "bare URLs, www. ones get GitHub's http:// destination",
        md("- Code: https://github.com/x/y.", "- Site www.example.com/page"),
        [
            (
                "https://github.com/x/y",
                "bare",
                1,
                "https://github.com/x/y",
                (),
                None,
                True,
                "Code: https://github.com/x/y.",
            ),
            (
                "http://www.example.com/page",
                "bare",
                2,
                "www.example.com/page",
                (),
                None,
                True,
                "Site www.example.com/page",
            ),
        ],
    ),
    (
        "a link whose text is its URL counts once",
        md("- [https://x.org/a](https://x.org/a)"),
        [("https://x.org/a", "inline", 1, "https://x.org/a", (), None, True, "https://x.org/a")],
    ),
    (
        "HTML block: a href around an img",
        md(
            '<p align="center">',
            '  <a href="https://github.com/x/y"><img src="https://x.org/logo.png" alt="Logo"></a>',
            "</p>",
        ),
        [
            ("https://github.com/x/y", "html", 2, "Logo", (), None, False, "Logo"),
            ("https://x.org/logo.png", "html", 2, "Logo", (), None, False, "Logo"),
        ],
    ),
    (
        "inline HTML in a list item; <a> can be the main link",
        md('- <a href="https://a.org">A</a> and <img src="https://a.org/i.png" alt="pic">'),
        [
            ("https://a.org", "html", 1, "A", (), None, True, "A and pic"),
            ("https://a.org/i.png", "html", 1, "pic", (), None, False, "A and pic"),
        ],
    ),
    (
        "picture sources: every srcset candidate, commas inside URLs kept",
        md(
            "<picture>",
            '<source srcset="https://x.org/d.png?a=1,2 1x, https://x.org/d2.png 2x">',
            '<img src="https://x.org/light.png" alt="Logo">',
            "</picture>",
        ),
        [
            ("https://x.org/d.png?a=1,2", "html", 2, "", (), None, False, "Logo"),
            ("https://x.org/d2.png", "html", 2, "", (), None, False, "Logo"),
            ("https://x.org/light.png", "html", 3, "Logo", (), None, False, "Logo"),
        ],
    ),
    (
        "nothing in HTML comments, one-line, inline or multi-line",
        md(
            "<!-- [hidden](https://hidden.example) -->",
            "Text <!-- https://inline.hidden --> [shown](https://shown.example)",
            "<!--",
            "[hidden2](https://hidden2.example)",
            "",
            "https://hidden3.example",
            "-->",
        ),
        [("https://shown.example", "inline", 2, "shown", (), None, False, "Text shown")],
    ),
    (
        "nothing in code spans, fenced or indented code",
        md(
            "`https://code.span` and [real](https://real.example) `arXiv:2409.12191`",
            "",
            "```",
            "[fenced](https://fenced.example)",
            "```",
            "",
            "    [indented](https://indented.example)",
        ),
        [
            (
                "https://real.example",
                "inline",
                1,
                "real",
                (),
                None,
                False,
                "https://code.span and real arXiv:2409.12191",
            )
        ],
    ),
    (
        "front matter and template tags are not content",
        md(
            "---",
            "title: x",
            "",
            "link: https://front.example",
            "---",
            "# T",
            "{{ site.url }} [a](https://a.example) {% include x.html %}",
            "*Updated {{ site.time | date: '%B %d, %Y' }}.*",
        ),
        [("https://a.example", "inline", 7, "a", ("T",), None, False, "a Updated .")],
    ),
    (
        "link text over two lines is one link, on the line it starts",
        md("- intro", "  [A very long", "  title](https://x.org/p) more"),
        [
            (
                "https://x.org/p",
                "inline",
                2,
                "A very long title",
                (),
                None,
                True,
                "intro A very long title more",
            )
        ],
    ),
    (
        "lines stay exact past an image alt, code span and link destination over lines",
        md(
            "intro",
            "text ![alt",
            "more](https://i.org/x.png) `code",
            "span` arXiv:2409.12191 [l](",
            'https://l.org "t"',
            ") arXiv:2409.00001",
        ),
        [
            ("https://i.org/x.png", "image", 2, "alt more", (), None, False, ANNOTATION),
            ("arXiv:2409.12191", "mention", 4, "arXiv:2409.12191", (), None, False, ANNOTATION),
            ("https://l.org", "inline", 4, "l", (), None, False, ANNOTATION),
            ("arXiv:2409.00001", "mention", 6, "arXiv:2409.00001", (), None, False, ANNOTATION),
        ],
    ),
    (
        "GitHub alert: the marker is no text; a quote's line numbers are exact",
        md("> [!NOTE]", "> Read", "> [the doc](https://doc.example)"),
        [("https://doc.example", "inline", 3, "the doc", (), None, False, "Read the doc")],
    ),
    (
        "headings: setext and ATX, rendered as plain text; a heading's link is under it",
        md(
            "Title **bold**",
            "===",
            "",
            "## Sub `code` [link](https://h.example)",
            "",
            "text [x](https://x.example)",
            "",
            "# Next",
            "[y](https://y.example)",
        ),
        [
            (
                "https://h.example",
                "inline",
                4,
                "link",
                ("Title bold", "Sub code link"),
                None,
                False,
                "Sub code link",
            ),
            (
                "https://x.example",
                "inline",
                6,
                "x",
                ("Title bold", "Sub code link"),
                None,
                False,
                "text x",
            ),
            ("https://y.example", "inline", 9, "y", ("Next",), None, False, "y"),
        ],
    ),
    (
        "headings inside a block quote apply only within it",
        md(
            "# Top",
            "",
            "> ## Quoted",
            "> [q](https://q.example)",
            "",
            "[after](https://after.example)",
        ),
        [
            ("https://q.example", "inline", 4, "q", ("Top", "Quoted"), None, False, "q"),
            ("https://after.example", "inline", 6, "after", ("Top",), None, False, "after"),
        ],
    ),
    (
        "nested lists: innermost item's own text; a dateless sub-item takes its parent's date",
        md(
            "- 2024.05 Parent [P](https://p.example)",
            "  - [C](https://c.example) child note",
            "    - 24.06 [G](https://g.example)",
            "- [Q](https://q.example)",
        ),
        [
            ("https://p.example", "inline", 1, "P", (), "2024-05", True, "2024.05 Parent P"),
            ("https://c.example", "inline", 2, "C", (), "2024-05", True, "C child note"),
            ("https://g.example", "inline", 3, "G", (), "2024-06", True, "24.06 G"),
            ("https://q.example", "inline", 4, "Q", (), None, True, "Q"),
        ],
    ),
    (
        "table row: date column, cells joined, first link of a body row is the main link",
        md(
            "## 表",
            "",
            "| 视频 | 论文日期 | 论文标题 | 代码 |",
            "|------|----------|----------|------|",
            "|  ✅  | 24.09 | [Qwen2-VL](http://arxiv.org/abs/2409.12191) "
            "| [code](https://github.com/QwenLM/Qwen2-VL) |",
            "|      | 23.08 | [Qwen-VL](http://arxiv.org/abs/2308.12966) | |",
        ),
        [
            (
                "http://arxiv.org/abs/2409.12191",
                "inline",
                5,
                "Qwen2-VL",
                ("表",),
                "2024-09",
                True,
                "✅ | 24.09 | Qwen2-VL | code",
            ),
            (
                "https://github.com/QwenLM/Qwen2-VL",
                "inline",
                5,
                "code",
                ("表",),
                "2024-09",
                False,
                "✅ | 24.09 | Qwen2-VL | code",
            ),
            (
                "http://arxiv.org/abs/2308.12966",
                "inline",
                6,
                "Qwen-VL",
                ("表",),
                "2023-08",
                True,
                "23.08 | Qwen-VL",
            ),
        ],
    ),
    (
        "the main link is the first link, not an image or a mention",
        md("- ![icon](https://x.org/i.png) arXiv:2409.12191 [Name](https://n.org)"),
        [
            (
                "https://x.org/i.png",
                "image",
                1,
                "icon",
                (),
                None,
                False,
                "icon arXiv:2409.12191 Name",
            ),
            (
                "arXiv:2409.12191",
                "mention",
                1,
                "arXiv:2409.12191",
                (),
                None,
                False,
                "icon arXiv:2409.12191 Name",
            ),
            ("https://n.org", "inline", 1, "Name", (), None, True, "icon arXiv:2409.12191 Name"),
        ],
    ),
    (
        "links of a later paragraph of a list item are not its main link",
        md("1. one", "", "   two [t](https://t.example)"),
        [("https://t.example", "inline", 3, "t", (), None, False, "one two t")],
    ),
    (
        "a date that is a paragraph's link text (alert-style entries)",
        md(
            "> [!NOTE] Seed1.8",
            "> **Tech Report** [2025-12-18](https://x.org/seed.pdf)",
            ">",
            "> **翻译** [Towards Agency](https://x.org/seed.pdf)",
        ),
        [
            (
                "https://x.org/seed.pdf",
                "inline",
                2,
                "2025-12-18",
                (),
                "2025-12-18",
                False,
                "[!NOTE] Seed1.8 Tech Report 2025-12-18",
            ),
            (
                "https://x.org/seed.pdf",
                "inline",
                4,
                "Towards Agency",
                (),
                None,
                False,
                "翻译 Towards Agency",
            ),
        ],
    ),
    (
        "footnote definitions stay where they are written",
        md(
            "# H",
            "Claim[^1].",
            "",
            "[^1]: See [fn](https://fn.example).",
            "",
            "# Later",
        ),
        [("https://fn.example", "inline", 4, "fn", ("H",), None, False, "See fn.")],
    ),
    (
        "relative links and anchors are kept as written",
        md("- [Docs](./docs/a.md) [Top](#top)"),
        [
            ("./docs/a.md", "inline", 1, "Docs", (), None, True, "Docs Top"),
            ("#top", "inline", 1, "Top", (), None, False, "Docs Top"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [(markdown, expected) for _, markdown, expected in CONSTRUCTS],
    ids=[name for name, _, _ in CONSTRUCTS],
)
def test_constructs(markdown: str, expected: list[Row]) -> None:
    assert rows(markdown) == expected


# GitHub's bare-URL autolinks follow cmark-gfm's extensions/autolink.c: a URL starts at
# `www.` (after whitespace, start, or `*_~(`) or at http/https/ftp + `://` (the ASCII
# letters before the `:` must be exactly the scheme); the domain must have no `_` in its
# last two labels; the URL runs to ASCII whitespace or `<` (CJK text and full-width
# punctuation included); trailing `?!.,:*_~'"` are trimmed, a trailing `)` while
# unbalanced, a trailing `;` with an entity-like `&name` before it; no URL is made while
# an unclosed `[` precedes (its `in_bracket` check). Bare emails are not extracted.
BARE_URLS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Visit www.commonmark.org/help for more information.",
        [("http://www.commonmark.org/help", "www.commonmark.org/help")],
    ),
    ("Visit www.commonmark.org.", [("http://www.commonmark.org", "www.commonmark.org")]),
    (
        "Visit www.commonmark.org/a.b.",
        [("http://www.commonmark.org/a.b", "www.commonmark.org/a.b")],
    ),
    (
        "www.google.com/search?q=Markup+(business)))",
        [
            (
                "http://www.google.com/search?q=Markup+(business)",
                "www.google.com/search?q=Markup+(business)",
            )
        ],
    ),
    (
        "(www.google.com/search?q=Markup+(business))",
        [
            (
                "http://www.google.com/search?q=Markup+(business)",
                "www.google.com/search?q=Markup+(business)",
            )
        ],
    ),
    (
        "www.google.com/search?q=(business))+ok",
        [
            (
                "http://www.google.com/search?q=(business))+ok",
                "www.google.com/search?q=(business))+ok",
            )
        ],
    ),
    (
        "www.google.com/search?q=commonmark&hl;",
        [("http://www.google.com/search?q=commonmark", "www.google.com/search?q=commonmark")],
    ),
    (
        "https://example.com/a?b=1&amp;",
        [("https://example.com/a?b=1", "https://example.com/a?b=1")],
    ),
    ("www.commonmark.org/he<lp", [("http://www.commonmark.org/he", "www.commonmark.org/he")]),
    ("ftp at ftp://foo.bar.baz.", [("ftp://foo.bar.baz", "ftp://foo.bar.baz")]),
    ('"http://google.com"', [("http://google.com", "http://google.com")]),
    ("**https://example.com/a**", [("https://example.com/a", "https://example.com/a")]),
    ("_https://example.com/a_b_", [("https://example.com/a_b", "https://example.com/a_b")]),
    ("~~www.google.com~~", [("http://www.google.com", "www.google.com")]),
    ("HTTPS://EXAMPLE.COM/A", [("HTTPS://EXAMPLE.COM/A", "HTTPS://EXAMPLE.COM/A")]),
    ("http://🍄.ga/", [("http://🍄.ga/", "http://🍄.ga/")]),
    ("http://localhost:8080/x", [("http://localhost:8080/x", "http://localhost:8080/x")]),
    ("Code:https://github.com/x/y", [("https://github.com/x/y", "https://github.com/x/y")]),
    (
        "**Code**: https://github.com/x/y<br>",
        [("https://github.com/x/y", "https://github.com/x/y")],
    ),
    # A stray `](` is no link, so the URL after it is bare and its `)` unbalanced.
    (
        "]Gemini 1.5](https://arxiv.org/abs/2403.05530)<br>",
        [("https://arxiv.org/abs/2403.05530", "https://arxiv.org/abs/2403.05530")],
    ),
    # CJK glued to a URL: the scheme is found (CJK is not an ASCII letter) and the URL
    # runs on to whitespace, so the CJK text after it is part of it on GitHub too.
    (
        "论文https://arxiv.org/abs/2409.12191中文介绍",
        [
            (
                "https://arxiv.org/abs/2409.12191中文介绍",
                "https://arxiv.org/abs/2409.12191中文介绍",
            )
        ],
    ),
    # Full-width punctuation ends the domain check, not the URL, and is never trimmed.
    (
        "见https://github.com/x/y，代码",
        [("https://github.com/x/y，代码", "https://github.com/x/y，代码")],
    ),
    (
        "https://example.com：8080 说明",
        [("https://example.com：8080", "https://example.com：8080")],
    ),
    ("（https://github.com/x/y）", [("https://github.com/x/y）", "https://github.com/x/y）")]),
    # No link: scheme glued to a word, www. after a letter or CJK, `_` in the last two
    # labels, an open bracket, an email address.
    ("xhttp://example.com", []),
    ("awww.example.com", []),
    ("中文www.example.com", []),
    ("http://a.b_c.com", []),
    ("http://a_b.c.d", [("http://a_b.c.d", "http://a_b.c.d")]),
    ("[see https://example.com]", []),
    ("[2024] https://example.com", [("https://example.com", "https://example.com")]),
    ("mail me@example.com", []),
]


@pytest.mark.parametrize(("text", "expected"), BARE_URLS, ids=[text for text, _ in BARE_URLS])
def test_bare_urls_as_github_finds_them(text: str, expected: list[tuple[str, str]]) -> None:
    assert urls(text) == expected
    assert all(o.syntax == "bare" for o in occurrences(text))


ITEM_DATES: list[tuple[str, str | None]] = [
    ("2025.03", "2025-03"),
    ("24.09", "2024-09"),
    ("2025-12-18", "2025-12-18"),
    ("2024/05", "2024-05"),
    ("2024.5.1", "2024-05-01"),
    ("[2024.05]", "2024-05"),
    ("**2024.05**", "2024-05"),
    ("【2024.05】", "2024-05"),
    ("Mar 2024", "2024-03"),
    ("March 12, 2024", "2024-03-12"),
    ("12 Mar 2024", "2024-03-12"),
    ("2024年5月", "2024-05"),
    ("2024年5月12日", "2024-05-12"),
    ("2024.13", None),  # no 13th month
    ("2023-02-29", None),  # not a leap year
    ("2024-02-29", "2024-02-29"),
    ("Qwen2.5", None),
    ("1.5B", None),
    ("2024.05.3B", None),
    ("2024", None),
    ("2511.21631", None),  # an arXiv ID, not a date
    ("Released 2024.05", None),  # not at the start
]


@pytest.mark.parametrize(("prefix", "expected"), ITEM_DATES, ids=[p for p, _ in ITEM_DATES])
def test_item_dates(prefix: str, expected: str | None) -> None:
    (found,) = occurrences(f"- {prefix} [Paper](https://x.org/p) notes\n")
    assert found.item_date == expected


def test_dates_in_table_cells_and_link_texts() -> None:
    doc = md(
        "| Model | Date |",
        "|---|---|",
        "| [A](https://a.org) | 2024-07 |",
        "| [B](https://b.org) | soon |",
        "",
        "- [C](https://c.org) [2023.11](https://c.org/log)",
    )
    assert [o.item_date for o in occurrences(doc)] == ["2024-07", None, "2023-11", "2023-11"]


MENTIONS: list[tuple[str, list[str]]] = [
    ("see arXiv:2409.12191 now", ["arXiv:2409.12191"]),
    ("see arXiv: 2409.12191v2.", ["arXiv: 2409.12191v2"]),
    ("see arxiv 2409.12191, too", ["arxiv 2409.12191"]),
    ("ARXIV:1501.00001", ["ARXIV:1501.00001"]),
    ("论文arXiv：2409.12191", ["arXiv：2409.12191"]),
    ("old style arXiv:hep-th/9901001v3", ["arXiv:hep-th/9901001v3"]),
    ("myarXiv:2409.12191", []),
    ("arXiv:2409.123456", []),
    ("`arXiv:2409.12191`", []),
    ("<code>arXiv:2409.12191</code>", []),
]


@pytest.mark.parametrize(("text", "expected"), MENTIONS, ids=[text for text, _ in MENTIONS])
def test_arxiv_mentions(text: str, expected: list[str]) -> None:
    found = occurrences(text)
    assert [o.url for o in found if o.syntax == "mention"] == expected
    assert all(o.link_text == o.url for o in found if o.syntax == "mention")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[arXiv:2409.12191](https://arxiv.org/abs/2409.12191)", ["inline"]),
        ("https://example.org/arxiv:2409.12191 x", ["bare"]),
        ("[https://example.org/arxiv 2409.12191]", []),  # no link (open bracket), no mention
    ],
)
def test_no_mention_inside_links_or_urls(text: str, expected: list[str]) -> None:
    assert [o.syntax for o in occurrences(text)] == expected


def test_positions_count_in_document_order() -> None:
    doc = md(
        "# A",
        "- [x](https://x.org) arXiv:2409.12191",
        "  - [y](https://y.org)",
        "- [z](https://z.org)",
        "",
        "| [t](https://t.org) |",
        "|---|",
    )
    found = occurrences(doc)
    assert [o.position for o in found] == list(range(len(found)))
    assert [o.url for o in found] == [
        "https://x.org",
        "arXiv:2409.12191",
        "https://y.org",
        "https://z.org",
        "https://t.org",
    ]
    assert {o.document for o in found} == {"doc.md"}


def test_real_seed_section() -> None:
    section = md(
        "# MLLM论文精选（持续更新）",
        "",
        "多模态交流QQ群: 237976286",
        "",
        "## 最新动态",
        "- 2025.03 [Gemma 3 Technical Report](https://storage.googleapis.com/deepmind-media/gemma/Gemma3Report.pdf)",
        "- 2025.01 [vikhyatk/moondream2](https://hf-mirror.com/vikhyatk/moondream2) ",
        "- 2024.12 [InternVL 2.5]"
        "(https://hf-mirror.com/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c)"
        "  1B 到 78B 都有。",
    )
    path = ("MLLM论文精选（持续更新）", "最新动态")
    assert rows(section) == [
        (
            "https://storage.googleapis.com/deepmind-media/gemma/Gemma3Report.pdf",
            "inline",
            6,
            "Gemma 3 Technical Report",
            path,
            "2025-03",
            True,
            "2025.03 Gemma 3 Technical Report",
        ),
        (
            "https://hf-mirror.com/vikhyatk/moondream2",
            "inline",
            7,
            "vikhyatk/moondream2",
            path,
            "2025-01",
            True,
            "2025.01 vikhyatk/moondream2",
        ),
        (
            "https://hf-mirror.com/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c",
            "inline",
            8,
            "InternVL 2.5",
            path,
            "2024-12",
            True,
            "2024.12 InternVL 2.5 1B 到 78B 都有。",
        ),
    ]


def test_annotation_is_bounded() -> None:
    (found,) = occurrences("- [x](https://x.org) " + "word " * 2000 + "\n")
    assert len(found.annotation) == 2000
    assert found.annotation.endswith("…")


# --- Chunked parsing gives the same result as one parse ---------------------------------

CHUNKY = md(
    "---",
    "title: chunks",
    "",
    "key: https://front.example",
    "---",
    "# One",
    "",
    "Use [the paper][ref] early.",
    "",
    "```text",
    "[in fence](https://fence.example)",
    "",
    "column zero [still fence](https://fence2.example)",
    "```",
    "",
    "<!--",
    "",
    "[in comment](https://comment.example)",
    "-->",
    "",
    "- [a](https://a.example)",
    "",
    "- [b](https://b.example)",
    "  - 2024.05 [c](https://c.example)",
    "",
    "## Two",
    "",
    "| x | y |",
    "|---|---|",
    "| 24.01 | [t](https://t.example) |",
    "",
    "- ```",
    "  [list fence](https://listfence.example)",
    "",
    "after [d](https://d.example)",
    "",
    "[ref]: https://ref.example",
)


LONG_LIST = md(
    "- [a](https://a.example)",
    "- [b](https://b.example) text",
    "  continued [c](https://c.example)",
    "- ```",
    "  [in item fence](https://fence.example)",
    "- [d](https://d.example)",
    "<div>",
    "- [in html block](https://html.example)",
    "</div>",
    "- [not a link either](https://html2.example)",
    "",
    "- [f](https://f.example)",
    "para",
    "2. [g](https://g.example)",
    "- [h](https://h.example)",
    "  ```",
    "  - [fenced](https://fenced.example)",
    "  ```",
    "- [i](https://i.example)",
)


@pytest.mark.parametrize("chunk_chars", [1, 16, 100, 1_000])
def test_chunked_parse_matches_whole_parse(chunk_chars: int) -> None:
    whole = occurrences(CHUNKY, chunk_chars=10**9)
    assert [(o.url, o.line) for o in whole] == [
        ("https://ref.example", 8),
        ("https://a.example", 21),
        ("https://b.example", 23),
        ("https://c.example", 24),
        ("https://t.example", 30),
        ("https://d.example", 35),
    ]
    assert occurrences(CHUNKY, chunk_chars=chunk_chars) == whole


@pytest.mark.parametrize("chunk_chars", [1, 16, 100, 1_000])
def test_long_lists_are_cut_between_items_only_where_safe(chunk_chars: int) -> None:
    # A list without blank lines is one block; chunks end between its bullet items.
    whole = occurrences(LONG_LIST, chunk_chars=10**9)
    assert [(o.url, o.line) for o in whole] == [
        ("https://a.example", 1),
        ("https://b.example", 2),
        ("https://c.example", 3),
        ("https://d.example", 6),
        ("https://f.example", 12),
        ("https://g.example", 14),
        ("https://h.example", 15),
        ("https://i.example", 19),
    ]
    assert occurrences(LONG_LIST, chunk_chars=chunk_chars) == whole


# --- Bad and odd input -------------------------------------------------------------------


def test_decode_document_returns_text_without_bom() -> None:
    assert decode_document("\ufeff# Título\r\n".encode(), "a.md") == "# Título\r\n"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"# ok\n\xff\xfe bad", "not UTF-8: invalid byte 0xff at offset 5"),
        (b"caf\xe9", "not UTF-8: invalid byte 0xe9 at offset 3"),
        (b"PK\x03\x04\x00\x00binary", "binary content (NUL byte at offset 4)"),
        ("# hi".encode("utf-16"), "UTF-16 text (byte-order mark at offset 0), not UTF-8"),
    ],
)
def test_decode_document_rejects_what_is_not_utf8_text(data: bytes, reason: str) -> None:
    with pytest.raises(DocumentError) as caught:
        decode_document(data, "lists/bad.md")
    assert caught.value.document == "lists/bad.md"
    assert caught.value.reason == reason
    assert str(caught.value) == f"lists/bad.md: {reason}"


@pytest.mark.parametrize(
    "text",
    [
        "intro\r\n\r\n- [x](https://x.org)\r\n",
        "intro\r\r[x](https://x.org)\r",
        "\ufeffintro\n\n[x](https://x.org)\n",
    ],
    ids=["crlf", "cr", "bom"],
)
def test_line_numbers_survive_line_endings_and_bom(text: str) -> None:
    assert [(o.url, o.line) for o in occurrences(text)] == [("https://x.org", 3)]


def test_crlf_file_end_to_end(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_bytes(b"# T\r\n\r\n- 2024.01 [A](https://a.org)\r\n- [B](https://b.org)\r\n")
    found = occurrences(decode_document(path.read_bytes(), "list.txt"))
    assert [(o.url, o.line, o.item_date) for o in found] == [
        ("https://a.org", 3, "2024-01"),
        ("https://b.org", 4, None),
    ]


@pytest.mark.parametrize("text", ["", "\n\n  \n", "---\ntitle: only front matter\n---\n"])
def test_documents_without_links_give_no_rows(text: str) -> None:
    assert occurrences(text) == []


def test_odd_links_do_not_break_extraction() -> None:
    long_url = "https://example.org/" + "a" * 10_000
    doc = md(
        f"[long]({long_url}) {long_url}",
        "[ctrl](<https://a.org/\x01b>) https://b.org/\x07c",
        "NUL\x00here [n](https://n.org)",
        "[" * 5_000 + "https://never.org" + "]" * 5_000,
    )
    assert [o.url for o in occurrences(doc)] == [
        long_url,
        long_url,
        "https://a.org/\x01b",
        "https://b.org/\x07c",
        "https://n.org",
    ]


def test_deep_nesting_keeps_every_link() -> None:
    # Past markdown-it's nesting guard (100 levels, 50 lists) blocks are read flat, so
    # nothing is dropped and Python's recursion limit is never near.
    deep_list = "".join("  " * i + f"- [x{i}](https://x.org/{i})\n" for i in range(300))
    found = occurrences(deep_list + "\n[after](https://after.org)\n")
    assert [o.url for o in found] == [f"https://x.org/{i}" for i in range(300)] + [
        "https://after.org"
    ]
    assert [o.line for o in found[:300]] == list(range(1, 301))
    deep_quote = ">" * 3_000 + " deep [q](https://q.org)\n\n[after](https://after.org)\n"
    assert [o.url for o in occurrences(deep_quote)] == ["https://q.org", "https://after.org"]
    mixed = "- > " * 600 + "[m](https://m.org)\n"
    assert [o.url for o in occurrences(mixed)] == ["https://m.org"]


def test_many_links_stream() -> None:
    doc = "".join(f"- [p{i}](https://x.org/{i}) arXiv:2409.{10000 + i}\n" for i in range(5_000))
    found = extract_document(doc, "many.md", chunk_chars=4_096)
    for index, occurrence in enumerate(found):
        assert occurrence.position == index
        assert occurrence.line == index // 2 + 1
