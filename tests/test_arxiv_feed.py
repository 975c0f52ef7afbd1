"""Reading arXiv answers (pure): recorded real bodies, records built from them, and the
validation every answer passes before anything in it is believed."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.resolve.arxiv_feed import (
    MAX_VERSION,
    Entry,
    FeedError,
    code_urls,
    paper_record,
    read_feed,
)

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "api-samples"
SAMPLE = (SAMPLES / "arxiv_id_list_unversioned_1605.08386.xml").read_bytes()


# -- reading feeds and records (pure) --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ids", "total"),
    [
        ("arxiv_id_list_unversioned_1605.08386.xml", ["1605.08386"], 1),
        ("arxiv_id_list_two_ids_one_missing.xml", ["1707.08567"], 1),
        ("arxiv_missing_id_0808.05394.xml", [], 0),
        ("arxiv_id_list_oldstyle_versioned_quant-ph_0201082v1.xml", ["quant-ph/0201082"], 1),
        ("arxiv_legacy_doc_example_search_all_electron.xml", ["hep-ex/0307015"], 1000),
    ],
)  # fmt: skip
def test_read_feed_on_recorded_answers(name: str, ids: list[str], total: int) -> None:
    feed = read_feed((SAMPLES / name).read_bytes())
    assert list(feed.entries) == ids and feed.total_results == total and not feed.errors


@pytest.mark.parametrize(
    ("name", "rejected"),
    [
        ("arxiv_malformed_id_abc_http400.xml", "abc"),
        ("arxiv_legacy_doc_example_error_malformed_id_1234.12345.xml", "1234.12345"),
    ],
)
def test_read_feed_finds_error_entries(name: str, rejected: str) -> None:
    feed = read_feed((SAMPLES / name).read_bytes())
    assert feed.entries == {} and feed.rejection(rejected) is not None
    assert feed.not_found_reason(rejected) == (
        f"arXiv rejected the identifier: incorrect id format for {rejected}"
    )


@pytest.mark.parametrize(
    "body",
    [
        (SAMPLES / "arxiv_legacy_error_url_as_id_PARTIAL.txt").read_bytes(),  # cut mid-tag
        (SAMPLES / "arxiv_id_list_unversioned_1605.08386.xml").read_bytes()[:-300],
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        b"Rate exceeded.",
        b"",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
        # A feed with a DTD: its entity, left unexpanded, would cut the title short.
        b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY a "aaaa">]>'
        + (SAMPLES / "arxiv_id_list_unversioned_1605.08386.xml")
        .read_bytes()
        .split(b"?>", 1)[1]
        .replace(b"<title>Heat", b"<title>&a; Heat"),
    ],
)
def test_read_feed_refuses_what_is_not_a_complete_feed(body: bytes) -> None:
    with pytest.raises(FeedError):
        read_feed(body)


def test_paper_record_from_recorded_answers() -> None:
    astro = (
        SAMPLES / "arxiv_id_list_oldstyle_affiliation_journalref_astro-ph_0601001.xml"
    ).read_bytes()
    record = paper_record("astro-ph/0601001", _entry(astro, "astro-ph/0601001"))
    assert record.author_affiliations[0] == ("Ohio State",)
    assert record.journal_ref == "ActaAstron.56:1-50,2006"
    assert record.abstract is not None and record.abstract.startswith("We derive")  # stripped
    assert (record.latest_version, record.primary_category) == (1, "astro-ph")
    search = (SAMPLES / "arxiv_search_query_testing_max10_doi_journalref.xml").read_bytes()
    doi = paper_record("2202.12139", _entry(search, "2202.12139"))
    assert doi.doi == "10.1109/ICSTW55395.2022.00035"
    assert paper_record("2204.08348", _entry(search, "2204.08348")).latest_version == 3


def test_pdf_link_is_found_by_type_when_its_title_is_missing() -> None:
    body = (SAMPLES / "arxiv_id_list_unversioned_1605.08386.xml").read_bytes()
    body = body.replace(b' title="pdf"', b"")  # as arXiv sent it for a while in Nov 2025
    record = paper_record("1605.08386", _entry(body))
    assert record.pdf_url == "https://arxiv.org/pdf/1605.08386v1"


@pytest.mark.parametrize(
    ("texts", "urls"),
    [
        (("Code: https://github.com/QwenLM/Qwen2-VL.",), ("https://github.com/QwenLM/Qwen2-VL",)),
        (("at github.com/OpenGVLab/InternVL/tree/main and https://GitHub.com/opengvlab/internvl",),
         ("https://github.com/OpenGVLab/InternVL",)),
        (("see https://gitlab.com/group/project.git, https://huggingface.co/Qwen/x",),
         ("https://gitlab.com/group/project",)),
        (("Qwen2.5-VL at https://github.com/QwenLM/Qwen2.5-VL}",), ("https://github.com/QwenLM/Qwen2.5-VL",)),
        (("https://github.com/orgs/foo and https://qwenlm.github.io/blog",), ()),
        (("https://notgithub.com/a/b",), ()),
        ((None, "no code"), ()),
    ],
)  # fmt: skip
def test_code_urls(texts: tuple[str | None, ...], urls: tuple[str, ...]) -> None:
    assert code_urls(*texts) == urls


# -- hostile and broken answers ----------------------------------------------------------


def _sample(**replacements: str) -> bytes:
    """The recorded answer for 1605.08386 with some of its texts replaced."""
    body = SAMPLE
    texts = {
        "entry_id": "http://arxiv.org/abs/1605.08386v1",
        "published": "<published>2016-05-26T17:59:46Z</published>",
        "updated": "<updated>2016-05-26T17:59:46Z</updated>",
        "total": "<opensearch:totalResults>1</opensearch:totalResults>",
        "start": "<opensearch:startIndex>0</opensearch:startIndex>",
        "pdf": 'href="https://arxiv.org/pdf/1605.08386v1"',
    }
    for name, new in replacements.items():
        assert texts[name].encode() in body, name
        body = body.replace(texts[name].encode(), new.encode())
    return body


HOSTILE_FEEDS = {
    "path traversal as the ID": (
        _sample(entry_id="http://arxiv.org/abs/../../etc/passwd"),
        r"entry 1: <id> 'http://arxiv.org/abs/../../etc/passwd' is not an arXiv abstract URL",
    ),
    "traversal after a valid ID": (
        _sample(entry_id="http://arxiv.org/abs/1605.08386v1/../../x"),
        r"entry 1: <id> .* is not an arXiv abstract URL",
    ),
    "another host": (
        _sample(entry_id="http://evil.example/arxiv.org/abs/1605.08386v1"),
        r"is not an arXiv abstract URL",
    ),
    "a prefix before the ID": (
        _sample(entry_id="http://arxiv.org/abs/arXiv:1605.08386v1"),
        r"is not an arXiv abstract URL",
    ),
    "a month that does not exist": (
        _sample(entry_id="http://arxiv.org/abs/1613.08386v1"),
        r"is not an arXiv abstract URL",
    ),
    "an empty ID": (_sample(entry_id=""), r"entry 1: <id> '' is not an arXiv abstract URL"),
    "version 0": (_sample(entry_id="http://arxiv.org/abs/1605.08386v0"), r"not an arXiv"),
    "a version past int64": (
        _sample(entry_id="http://arxiv.org/abs/1605.08386v99999999999999999999999"),
        r"entry 1: <id> .* has an absurd version number",
    ),
    "a version past the contract's int32": (
        _sample(entry_id=f"http://arxiv.org/abs/1605.08386v{MAX_VERSION + 1}"),
        r"absurd version number",
    ),
    "a published date that is no date": (
        _sample(published="<published>2016-13-26T17:59:46Z</published>"),
        r"entry 1 \(1605\.08386\): <published> '2016-13-26T17:59:46Z' is not a date",
    ),
    "a date at the edge of the calendar": (
        _sample(published="<published>0001-01-01T00:00:00+01:00</published>"),
        r"entry 1 \(1605\.08386\): <published> '0001-01-01T00:00:00\+01:00' is not a date",
    ),
    "an updated date in words": (
        _sample(updated="<updated>yesterday</updated>"),
        r"entry 1 \(1605\.08386\): <updated> 'yesterday' is not a date",
    ),
    "a negative count": (
        _sample(total="<opensearch:totalResults>-1</opensearch:totalResults>"),
        r"<opensearch:totalResults> is not a count: '-1'",
    ),
    "a count past int64": (
        _sample(total=f"<opensearch:totalResults>{'9' * 30}</opensearch:totalResults>"),
        r"<opensearch:totalResults> is not a count",
    ),
    "a start in words": (
        _sample(start="<opensearch:startIndex>zero</opensearch:startIndex>"),
        r"<opensearch:startIndex> is not a count: 'zero'",
    ),
}


@pytest.mark.parametrize(("body", "problem"), HOSTILE_FEEDS.values(), ids=HOSTILE_FEEDS.keys())
def test_a_feed_with_an_invalid_value_is_refused_whole(body: bytes, problem: str) -> None:
    with pytest.raises(FeedError, match=problem):
        read_feed(body)


def test_the_sample_itself_reads() -> None:
    # The hostile table's template is a valid answer: only the replaced text is wrong.
    feed = read_feed(_sample())
    entry = feed.entry("1605.08386")
    assert entry is not None and entry.version == 1
    assert entry.published == datetime(2016, 5, 26, 17, 59, 46, tzinfo=UTC)


def test_dates_with_an_offset_are_read_as_utc() -> None:
    feed = read_feed(_sample(published="<published>2016-05-26T13:59:46-04:00</published>"))
    entry = feed.entry("1605.08386")
    assert entry is not None and entry.published == datetime(2016, 5, 26, 17, 59, 46, tzinfo=UTC)


@pytest.mark.parametrize(
    "href", ["javascript:alert(1)", "file:///etc/passwd", "//arxiv.org/pdf/1605.08386v1", ""]
)
def test_a_link_that_is_not_a_web_url_is_dropped(href: str) -> None:
    record = paper_record("1605.08386", _entry(_sample(pdf=f'href="{href}"')))
    assert record.pdf_url is None
    assert record.abs_url == "https://arxiv.org/abs/1605.08386v1"


def test_an_entry_missing_a_required_element_is_incomplete_not_an_error() -> None:
    # The legacy backend's field-less entries: the resolver asks those again.
    feed = read_feed(_sample(published=""))
    assert feed.entries == {} and feed.missing_fields("1605.08386") == ("published",)
    assert feed.answered_ids() == {"1605.08386"}


def test_entries_are_keyed_by_canonical_id() -> None:
    body = (SAMPLES / "arxiv_id_list_oldstyle_versioned_quant-ph_0201082v1.xml").read_bytes()
    feed = read_feed(body)
    assert feed.entry("quant-ph/0201082") is feed.entry("quant-ph/0201082v1") is not None
    assert feed.entry("arXiv:quant-ph/0201082") is not None


def _entry(body: bytes, arxiv_id: str = "1605.08386") -> Entry:
    entry = read_feed(body).entry(arxiv_id)
    assert entry is not None, f"no entry for {arxiv_id}"
    return entry
