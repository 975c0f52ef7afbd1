"""The arXiv double: the real wire format (checked against recorded answers) and the
semantics of `/api/query` that the resolver depends on."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
import requests
from arxiv import _feed
from lxml import etree

from pipeline.sandbox import Fault, Request, Sandbox
from pipeline.sandbox.arxiv_api import (
    ARXIV_NS,
    ATOM_NS,
    SAMPLE_NOTICE,
    ArxivDouble,
    SampleAuthor,
    SamplePaper,
    check_fault_name,
    load_sample_papers,
    malformed_id_feed,
    parse_search_query,
    server_id_parts,
    synthetic_paper,
)

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "api-samples"
SEEDS_EXPECTED = Path(__file__).resolve().parent / "data" / "seeds_expected.json"
NS = {"atom": ATOM_NS, "arxiv": ARXIV_NS, "os": "http://a9.com/-/spec/opensearch/1.1/"}
T = datetime(2024, 9, 1, tzinfo=UTC)


def _paper(arxiv_id: str, title: str, *days: int, **extra: Any) -> SamplePaper:
    """A paper whose versions were submitted on the given days of September 2024."""
    return SamplePaper(
        arxiv_id=arxiv_id,
        title=title,
        submitted=tuple(T.replace(day=day) for day in days or (1,)),
        authors=(SampleAuthor("Sample Author A"),),
        abstract=f"{SAMPLE_NOTICE} {title}",
        categories=("cs.CV",),
        **extra,
    )


PAPERS = [
    _paper("2409.00001", "Visual Instruction Tuning", 1),
    _paper("2409.00002", "Improved Baselines with Visual Instruction Tuning", 2, 9, 20),
    _paper("2409.00003", "Qwen2-VL: Enhancing Vision-Language Model's Perception", 3),
    _paper("2409.00004", "Segment Anything", 4),
    _paper("2409.00005", "Matryoshka Multimodal Models", 5),
    _paper("hep-th/9901001", "An Old Style Paper", 6),
]


def _request(query: str = "", form: Sequence[tuple[str, str]] = (), **kw: Any) -> Request:
    return Request(
        api="arxiv",
        method="POST" if form else "GET",
        path=kw.pop("path", "/api/query"),
        query=parse_qsl(query, keep_blank_values=True),
        form=list(form),
        headers={},
        fault=kw.pop("fault", None),
    )


def _ask(double: ArxivDouble, **params: str) -> tuple[int, Any]:
    response = double.handle(_request(urlencode(params)))
    return response.status, etree.fromstring(response.body)


def _entry_ids(feed: Any) -> list[str]:
    return [e.findtext("atom:id", namespaces=NS).rsplit("/abs/", 1)[1] for e in _entries(feed)]


def _entries(feed: Any) -> list[Any]:
    return list(feed.iterfind("atom:entry", NS))


def _total(feed: Any) -> int:
    return int(feed.findtext("os:totalResults", namespaces=NS))


@pytest.fixture
def double() -> ArxivDouble:
    return ArxivDouble(PAPERS)


# -- the wire format, against recorded answers ------------------------------------------


def _sample_tree(name: str) -> Any:
    return etree.fromstring((SAMPLES / name).read_bytes())


def _paper_of_real_entry(entry: Any) -> SamplePaper:
    """The real entry's values as a sample paper, so that the double must re-create it."""

    def text(path: str) -> str | None:
        found = entry.find(path, NS)
        return None if found is None else found.text

    def required(path: str) -> str:
        value = text(path)
        assert value is not None, path
        return value

    versioned = required("atom:id").rsplit("/abs/", 1)[1]
    arxiv_id, version = versioned.rsplit("v", 1)
    published = datetime.fromisoformat(required("atom:published").replace("Z", "+00:00"))
    updated = datetime.fromisoformat(required("atom:updated").replace("Z", "+00:00"))
    submitted = (published,) + (updated,) * (int(version) - 1)
    return SamplePaper(
        arxiv_id=arxiv_id,
        title=text("atom:title") or "",
        submitted=submitted,
        authors=tuple(
            SampleAuthor(
                a.findtext("atom:name", namespaces=NS),
                tuple(x.text for x in a.iterfind("arxiv:affiliation", NS)),
            )
            for a in entry.iterfind("atom:author", NS)
        ),
        abstract=text("atom:summary") or "",
        categories=tuple(c.get("term") for c in entry.iterfind("atom:category", NS)),
        comment=text("arxiv:comment"),
        journal_ref=text("arxiv:journal_ref"),
        doi=text("arxiv:doi"),
    )


REAL_ENTRY_SAMPLES = [
    "arxiv_id_list_unversioned_1605.08386.xml",  # comment
    "arxiv_id_list_oldstyle_affiliation_journalref_astro-ph_0601001.xml",  # affiliations
    "arxiv_id_list_oldstyle_versioned_quant-ph_0201082v1.xml",  # cross-list
    "arxiv_id_list_versioned_title_zero_2104.12255v1.xml",  # no comment, title "0"
    "arxiv_id_list_two_ids_one_missing.xml",  # 34 authors, UTF-8 names
    "arxiv_search_query_testing_max10_doi_journalref.xml",  # DOI link after the authors
]


@pytest.mark.parametrize("name", REAL_ENTRY_SAMPLES)
def test_entries_are_byte_identical_to_the_real_service(name: str) -> None:
    """Given a real entry's values, the double writes exactly the entry arXiv wrote:
    element set and order, attributes and their order, namespaces, text."""
    for real in _entries(_sample_tree(name)):
        paper = _paper_of_real_entry(real)
        versioned = real.findtext("atom:id", namespaces=NS).rsplit("/abs/", 1)[1]
        _, feed = _ask(ArxivDouble([paper]), id_list=versioned, max_results="1")
        (made,) = _entries(feed)
        assert etree.tostring(made, with_tail=False) == etree.tostring(real, with_tail=False)


def _shape(element: Any) -> list[tuple[str, tuple[str, ...]]]:
    """Tags and attribute names of the feed's own children (entries excluded)."""
    return [
        (child.tag, tuple(child.attrib)) for child in element if child.tag != f"{{{ATOM_NS}}}entry"
    ]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        (
            "arxiv_id_list_unversioned_1605.08386.xml",
            {"search_query": "", "id_list": "1605.08386", "start": "0", "max_results": "100"},
        ),
        (
            "arxiv_missing_id_0000.0000.xml",
            {"search_query": "", "id_list": "0000.0000", "start": "0", "max_results": "100"},
        ),
        (
            "arxiv_search_query_testing_max10_doi_journalref.xml",
            {"search_query": "testing", "start": "0", "max_results": "10"},
        ),
    ],
)
def test_feed_header_matches_the_real_service(name: str, params: dict[str, str]) -> None:
    real = _sample_tree(name)
    papers = [_paper_of_real_entry(e) for e in _entries(real)] or PAPERS
    response = ArxivDouble(papers).handle(_request(urlencode(params)))
    made = etree.fromstring(response.body)
    assert response.body.startswith(
        b"<?xml version='1.0' encoding='UTF-8'?>\n<feed xmlns:opensearch"
    )
    assert made.nsmap == real.nsmap
    assert _shape(made) == _shape(real)
    # The title echoes the query as the real one does (the search adds `all:`).
    assert made.findtext("atom:title", namespaces=NS) == real.findtext("atom:title", namespaces=NS)
    assert made.find("atom:link", NS).get("href") == real.find("atom:link", NS).get("href")
    assert re.fullmatch(
        r"https://arxiv\.org/api/[A-Za-z0-9+/]{27}", made.findtext("atom:id", namespaces=NS)
    )
    if name.startswith("arxiv_search"):
        assert _total(made) == 10  # only what the double holds; the real one counted 214881
    else:
        assert _total(made) == _total(real)


def test_malformed_id_answer_is_the_real_error_feed() -> None:
    real = (SAMPLES / "arxiv_malformed_id_abc_http400.xml").read_bytes()
    stamp = datetime.fromisoformat(
        etree.fromstring(real).findtext("atom:updated", namespaces=NS).replace("Z", "+00:00")
    )
    assert malformed_id_feed("abc", now=stamp) == real
    response = ArxivDouble(PAPERS).handle(_request("search_query=&id_list=abc"))
    assert response.status == 400
    assert response.headers["content-type"] == "application/atom+xml"
    assert _shape(etree.fromstring(response.body)) == _shape(etree.fromstring(real))


def test_bodies_parse_with_arxivs_own_parser() -> None:
    paper = SamplePaper(
        arxiv_id="2409.00009",
        title="A Paper",
        submitted=(T, T.replace(day=3)),
        authors=(SampleAuthor("Sample Author A", ("Sample University 1",)),),
        abstract=f"{SAMPLE_NOTICE} abstract",
        categories=("cs.CV", "cs.CL"),
        comment="Code: https://github.com/sample-org/a-paper",
        journal_ref="J. Sample 1",
        doi="10.5555/x",
    )
    response = ArxivDouble([paper]).handle(_request("id_list=2409.00009"))
    parsed = _feed.parse(response.body)
    assert not parsed.malformed
    (result,) = parsed.results
    assert result.get_short_id() == "2409.00009v2"
    assert result.title == "A Paper"
    assert (result.primary_category, result.categories) == ("cs.CV", ["cs.CV", "cs.CL"])
    assert result.published == T and result.updated == T.replace(day=3)
    assert result.authors[0].affiliation == ["Sample University 1"]
    assert (result.doi, result.journal_ref) == ("10.5555/x", "J. Sample 1")
    assert result.pdf_url == "https://arxiv.org/pdf/2409.00009v2"


# -- id_list semantics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id_list", "expected"),
    [
        ("2409.00002", ["2409.00002v3"]),  # unversioned: the latest version
        ("2409.00002v1", ["2409.00002v1"]),  # versioned: that version
        ("2409.00002v3", ["2409.00002v3"]),
        ("2409.00002v4", []),  # a version that does not exist
        ("2409.99999", []),  # unknown: silently absent
        ("0000.0000", []),  # well-formed for the server, unknown
        ("hep-th/9901001", ["hep-th/9901001v1"]),
        ("hep-th/9901001v1", ["hep-th/9901001v1"]),
        # Not request order: newest first.
        ("2409.00001,2409.00005,2409.00003", ["2409.00005v1", "2409.00003v1", "2409.00001v1"]),
        ("2409.00001,2409.99999,2409.00004", ["2409.00004v1", "2409.00001v1"]),
    ],
)
def test_id_list(double: ArxivDouble, id_list: str, expected: list[str]) -> None:
    status, feed = _ask(double, id_list=id_list, max_results="100")
    assert status == 200
    assert _entry_ids(feed) == expected
    assert _total(feed) == len(expected)  # only what was found is counted


def test_versioned_entry_carries_that_versions_date(double: ArxivDouble) -> None:
    _, feed = _ask(double, id_list="2409.00002v2")
    (entry,) = _entries(feed)
    assert entry.findtext("atom:updated", namespaces=NS) == "2024-09-09T00:00:00Z"
    assert entry.findtext("atom:published", namespaces=NS) == "2024-09-02T00:00:00Z"


@pytest.mark.parametrize(
    ("id_list", "bad"),
    [
        ("abc", "abc"),
        ("2409.00001,https://arxiv.org/abs/2409.00002,xyz", "https://arxiv.org/abs/2409.00002"),
        ("2409.00001,arXiv:2409.00002", "arXiv:2409.00002"),
        ("2409.00001,2409.123", "2409.123"),
    ],
)
def test_one_malformed_id_fails_the_whole_request(
    double: ArxivDouble, id_list: str, bad: str
) -> None:
    status, feed = _ask(double, id_list=id_list)
    assert status == 400
    (entry,) = _entries(feed)
    assert entry.findtext("atom:id", namespaces=NS) == (
        f"https://arxiv.org/api/errors#incorrect_id_format_for_{bad}"
    )
    assert entry.findtext("atom:summary", namespaces=NS) == f"incorrect id format for {bad}"


@pytest.mark.parametrize(
    ("params", "entries", "total"),
    [
        ({}, 10, 12),  # max_results defaults to 10, for id_list too
        ({"max_results": "12"}, 12, 12),
        ({"start": "10"}, 2, 12),
        ({"start": "5", "max_results": "3"}, 3, 12),
        ({"start": "20"}, 0, 12),
    ],
)
def test_paging(params: dict[str, str], entries: int, total: int) -> None:
    papers = [_paper(f"2409.{n:05d}", f"Paper {n}", 1 + n % 28) for n in range(12)]
    status, feed = _ask(ArxivDouble(papers), id_list=",".join(p.arxiv_id for p in papers), **params)
    assert status == 200
    assert (len(_entries(feed)), _total(feed)) == (entries, total)
    assert feed.findtext("os:startIndex", namespaces=NS) == params.get("start", "0")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"id_list": "2409.00001", "max_results": "ten"}, "max_results must be an integer"),
        ({"id_list": "2409.00001", "max_results": "-1"}, "max_results must be non-negative"),
        ({"id_list": "2409.00001", "start": "x"}, "start must be an integer"),
        ({"id_list": "2409.00001", "start": "-5"}, "start must be non-negative"),
    ],
)
def test_bad_paging_parameters_are_400s(
    double: ArxivDouble, params: dict[str, str], message: str
) -> None:
    status, feed = _ask(double, **params)
    assert status == 400
    assert _entries(feed)[0].findtext("atom:summary", namespaces=NS) == message


# -- search_query semantics ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('ti:"visual instruction tuning"', ["2409.00001", "2409.00002"]),  # shorter first
        ('ti:"VISUAL Instruction tuning"', ["2409.00001", "2409.00002"]),  # any case
        ('ti:"instruction visual"', []),  # a phrase keeps its word order
        ("ti:segment", ["2409.00004"]),
        ("ti:segm*", ["2409.00004"]),
        ('ti:"Model\'s Perception"', ["2409.00003"]),
        (
            'ti:"segment anything" OR ti:"matryoshka multimodal models"',
            ["2409.00004", "2409.00005"],
        ),
        ("ti:visual AND ti:improved", ["2409.00002"]),
        ("ti:visual ANDNOT ti:improved", ["2409.00001"]),
        # No operator means OR: an unquoted multi-word title matches far more than itself.
        ("ti:segment matryoshka", ["2409.00004", "2409.00005"]),
        ("ti:(segment matryoshka)", ["2409.00004", "2409.00005"]),
        # AND binds tighter than OR.
        ("ti:segment OR ti:visual AND ti:improved", ["2409.00002", "2409.00004"]),
        ("(ti:segment OR ti:visual) AND ti:improved", ["2409.00002"]),
        (
            "au:sample ANDNOT ti:visual",
            ["2409.00003", "2409.00004", "2409.00005", "hep-th/9901001"],
        ),
        ("cat:cs.CV AND ti:qwen2", ["2409.00003"]),
        ('ti:"nothing like this"', []),
    ],
)
def test_search_query(double: ArxivDouble, query: str, expected: list[str]) -> None:
    status, feed = _ask(double, search_query=query, max_results="50")
    assert status == 200
    found = [i.rsplit("v", 1)[0] for i in _entry_ids(feed)]
    assert sorted(found) == sorted(expected)
    assert _total(feed) == len(expected)
    if query.startswith('ti:"visual'):
        assert found == expected  # relevance: the shortest matching title first


def test_id_list_with_search_query_is_and(double: ArxivDouble) -> None:
    _, feed = _ask(
        double, search_query="ti:visual", id_list="2409.00002,2409.00004", max_results="10"
    )
    assert _entry_ids(feed) == ["2409.00002v3"]


def test_unprefixed_terms_are_echoed_as_all(double: ArxivDouble) -> None:
    _, feed = _ask(double, search_query="testing")
    assert feed.findtext("atom:title", namespaces=NS).startswith(
        "arXiv Query: search_query=all:testing&id_list=&start=0&max_results=10"
    )


@pytest.mark.parametrize("query", ['ti:"unclosed AND', "ti:(a b", "AND ti:a", "zz:word"])
def test_unreadable_search_query_is_a_400(double: ArxivDouble, query: str) -> None:
    status, _ = _ask(double, search_query=query)
    assert status == 400


@pytest.mark.parametrize(
    ("sort_by", "order", "expected"),
    [
        ("submittedDate", "ascending", ["2409.00001", "2409.00002", "2409.00003"]),
        ("submittedDate", "descending", ["2409.00003", "2409.00002", "2409.00001"]),
        ("lastUpdatedDate", "descending", ["2409.00002", "2409.00003", "2409.00001"]),
    ],
)
def test_sorting(double: ArxivDouble, sort_by: str, order: str, expected: list[str]) -> None:
    _, feed = _ask(
        double, id_list="2409.00001,2409.00002,2409.00003", sortBy=sort_by, sortOrder=order
    )
    assert [i.rsplit("v", 1)[0] for i in _entry_ids(feed)] == expected


def test_parse_search_query_renders_what_it_read() -> None:
    assert parse_search_query('ti:"a b" OR ti:c').render() == 'ti:"a b" OR ti:c'
    assert parse_search_query("a b").render() == "all:a OR all:b"


# -- faults --------------------------------------------------------------------------------


def test_empty_page_fault(double: ArxivDouble) -> None:
    fault = Fault(api="arxiv", kind="api", name="empty_page")
    response = double.handle(_request("id_list=2409.00001,2409.00002", fault=fault))
    feed = etree.fromstring(response.body)
    assert response.status == 200
    assert (_entries(feed), _total(feed)) == ([], 2)


def test_drop_field_fault(double: ArxivDouble) -> None:
    fault = Fault(api="arxiv", kind="api", name="drop_field")
    response = double.handle(_request("id_list=2409.00001", fault=fault))
    (entry,) = _entries(etree.fromstring(response.body))
    for name in ("title", "summary", "published"):
        assert entry.find(f"atom:{name}", NS) is None
    assert entry.findtext("atom:id", namespaces=NS) == "http://arxiv.org/abs/2409.00001v1"
    assert _feed.parse(response.body).results == []  # arxiv's parser skips such entries


@pytest.mark.parametrize(
    ("id_list", "named"), [("2409.00001,abc", "abc"), ("2409.00001", "2409.00001")]
)
def test_legacy_error_200_fault(double: ArxivDouble, id_list: str, named: str) -> None:
    fault = Fault(api="arxiv", kind="api", name="legacy_error_200")
    response = double.handle(_request(urlencode({"id_list": id_list}), fault=fault))
    assert response.status == 200
    feed = etree.fromstring(response.body)
    (entry,) = _entries(feed)
    assert entry.findtext("atom:id", namespaces=NS) == (
        f"http://arxiv.org/api/errors#incorrect_id_format_for_{named}"
    )
    legacy = etree.fromstring(
        (SAMPLES / "arxiv_legacy_doc_example_error_malformed_id_1234.12345.xml").read_bytes()
    )
    assert [c.tag for c in feed] == [c.tag for c in legacy]
    assert [c.tag for c in entry] == [c.tag for c in _entries(legacy)[0]]


def test_unknown_fault_names_are_refused(double: ArxivDouble) -> None:
    with pytest.raises(ValueError, match="unknown arXiv API fault 'empty'"):
        check_fault_name("empty")
    fault = Fault(api="arxiv", kind="api", name="rate_limited")  # a Hub fault
    with pytest.raises(ValueError, match="known: drop_field, empty_page, legacy_error_200"):
        double.handle(_request("id_list=2409.00001", fault=fault))


# -- over HTTP -----------------------------------------------------------------------------


def test_get_and_post_over_loopback() -> None:
    with Sandbox(arxiv=ArxivDouble(PAPERS)) as sandbox:
        url = sandbox.arxiv_api_url
        got = requests.get(url, params={"id_list": "2409.00004"}, timeout=5)
        posted = requests.post(url, data={"id_list": "2409.00004"}, timeout=5)
        missing = requests.get(url.replace("/api/query", "/api/other"), timeout=5)
    assert got.status_code == posted.status_code == 200
    assert got.headers["content-type"] == "application/atom+xml"
    assert _entry_ids(etree.fromstring(got.content)) == ["2409.00004v1"]
    assert _entry_ids(etree.fromstring(posted.content)) == ["2409.00004v1"]
    assert missing.status_code == 404


# -- data ------------------------------------------------------------------------------------


def test_every_arxiv_id_of_the_seeds_is_served() -> None:
    expected = json.loads(SEEDS_EXPECTED.read_text(encoding="utf-8"))["all_arxiv_ids"]
    papers = load_sample_papers()
    assert set(expected) <= set(papers)


@pytest.mark.parametrize(
    ("arxiv_id", "title"),
    [
        ("2409.11402", "NVLM: Open Frontier-Class Multimodal LLMs"),
        ("2410.05993", "Aria: An Open Multimodal Native Mixture-of-Experts Model"),
        ("2204.14198", "Flamingo: a Visual Language Model for Few-Shot Learning"),
        ("2304.08485", "Visual Instruction Tuning"),
        ("2310.03744", "Improved Baselines with Visual Instruction Tuning"),
        ("2104.12255", "0"),
    ],
)
def test_papers_cited_only_by_title_are_served_with_their_real_title(
    arxiv_id: str, title: str
) -> None:
    assert load_sample_papers()[arxiv_id].title == title


def test_sample_data_is_labelled_and_plausible() -> None:
    papers = load_sample_papers().values()
    for paper in papers:
        assert paper.abstract.startswith(SAMPLE_NOTICE), paper.arxiv_id
        assert all(a.name.startswith("Sample Author ") for a in paper.authors)
        digits = paper.arxiv_id.split("/")[-1][:4]
        year = int(digits[:2]) + (1900 if int(digits[:2]) >= 91 else 2000)
        assert (paper.submitted[0].year, paper.submitted[0].month) == (year, int(digits[2:])), (
            paper.arxiv_id
        )
        assert list(paper.submitted) == sorted(paper.submitted)
    assert sum(p.latest_version > 1 for p in papers) > 10
    assert any(p.doi and p.journal_ref for p in papers)
    assert any("github.com" in (p.comment or "") for p in papers)
    assert any(a.affiliations for p in papers for a in p.authors)
    assert any("/" in p.arxiv_id for p in papers)


def test_synthesized_unknown_ids_only_when_asked() -> None:
    plain = ArxivDouble(PAPERS)
    scaled = ArxivDouble(PAPERS, synthesize_unknown=True)
    ids = "2409.00001,2501.12345,hep-th/9902002"
    assert _entry_ids(_ask(plain, id_list=ids)[1]) == ["2409.00001v1"]
    first = _ask(scaled, id_list=ids)[1]
    found = sorted(i.rsplit("v", 1)[0] for i in _entry_ids(first))
    assert found == ["2409.00001", "2501.12345", "hep-th/9902002"]
    assert etree.tostring(_ask(scaled, id_list="2501.12345")[1].find("atom:entry", NS)) == (
        etree.tostring(_ask(scaled, id_list="2501.12345")[1].find("atom:entry", NS))
    )
    synthetic = synthetic_paper("2501.12345")
    assert synthetic.submitted[0].strftime("%y%m") == "2501"


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("2409.12191", ("2409.12191", None)),
        ("2409.12191v2", ("2409.12191", 2)),
        ("0808.05394", ("0808.05394", None)),  # the server is looser than our validation
        ("math.GT/0309136", ("math.GT/0309136", None)),
        ("hep-th/9901001v3", ("hep-th/9901001", 3)),
        ("abc", None),
        ("arXiv:2409.12191", None),
        ("2409.123", None),
        ("https://arxiv.org/abs/2409.12191", None),
    ],
)
def test_server_id_rule(text: str, parts: tuple[str, int | None] | None) -> None:
    assert server_id_parts(text) == parts
