"""Paper titles (pure): normalisation, matching a link's text against arXiv's titles,
telling a title from other link text, and picking the link texts worth a title search."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc

from pipeline.links.identify import parse_arxiv_id

FUZZY_MIN_SIMILARITY = 0.95
"""Below this, two titles that are not equal once normalised are different papers."""


TRUNCATED_MIN_COVERAGE = 0.9
"""A link text cut short ("...Mixture-of-Experts Mode") must still cover this share of
the candidate title; "Qwen2-VL" does not cover "Qwen2-VL: Enhancing ..."."""


TRUNCATED_MIN_WORDS = 4


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


_TEX_COMMAND = re.compile(r"\\(?:(?P<name>[A-Za-z]+)\*?|(?P<char>.))")


_TEX_GROUPING = str.maketrans("", "", "${}_^")


_QUERY_WORDS = frozenset({"AND", "OR", "ANDNOT", "NOT", "TO"})


def _tex_symbol(match: re.Match[str]) -> str:
    """`\\pi` -> `π`, `\\&` -> `&`; other commands (`\\emph`, `\\textbf`) vanish."""
    if match["char"] is not None:
        return match["char"]
    name = match["name"]
    case = "CAPITAL" if name[0].isupper() else "SMALL"
    try:
        return unicodedata.lookup(f"GREEK {case} LETTER {name.upper()}")
    except KeyError:
        return ""


def _untex(text: str) -> str:
    """Titles as arXiv stores them may hold TeX (`$\\pi_0$`); link texts write `π0`."""
    return _TEX_COMMAND.sub(_tex_symbol, text).translate(_TEX_GROUPING)


def normalise_title(text: str) -> str:
    """The form titles are compared in: NFKC, TeX markup dropped, case-folded, every run
    of punctuation and whitespace one space (`Model’s` and `Model's` compare equal)."""
    text = _untex(unicodedata.normalize("NFKC", text).translate(_APOSTROPHES)).casefold()
    kept = "".join(ch if ch.isalnum() else " " for ch in text)
    return " ".join(kept.split())


def title_phrase(title: str) -> str:
    """`title` as the words of an arXiv `ti:"…"` phrase: characters that are query syntax
    (`:`, quotes, brackets, TeX, wildcards, ...) become spaces, and the Boolean operators
    are lower-cased so that they stay words. Hyphens, apostrophes and dots are kept so
    that arXiv's analyser splits the words as it split the indexed title."""
    text = _untex(unicodedata.normalize("NFKC", title).translate(_APOSTROPHES))
    kept = "".join(ch if ch.isalnum() or ch in "-'.," or ch.isspace() else " " for ch in text)
    words = [w.strip("-'.,") for w in kept.split()]
    return " ".join(w.lower() if w in _QUERY_WORDS else w for w in words if w)


def search_phrase(title: str) -> str:
    """The phrase searched for a title. A long title's last word is left out: reading
    lists cut titles short ("…Mixture-of-Experts Mode"), and a cut word matches nothing;
    the title comparison afterwards is as strict either way."""
    words = title_phrase(title).split()
    if len(words) > TRUNCATED_MIN_WORDS:
        words = words[:-1]
    return " ".join(words)


@dataclass(frozen=True, slots=True)
class TitleVerdict:
    """Which candidate (if any) carries the title asked about, and why."""

    arxiv_id: str | None
    matched_title: str | None = None
    similarity: float | None = None
    reason: str | None = None
    """Why no candidate was accepted."""


def _similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def _numbered(words: Sequence[str]) -> list[str]:
    return sorted(word for word in words if any(ch.isdigit() for ch in word))


def _accepts(query: str, candidate: str) -> float | None:
    """The similarity at which `candidate` counts as the title `query` names, or None.
    Both are normalised. A wrong paper is worse than none: every rule is strict."""
    if query == candidate:
        return 1.0
    similarity = _similarity(query, candidate)
    q_words, c_words = query.split(), candidate.split()
    # A link text cut short by its writer: a long prefix covering nearly all the title.
    if (
        candidate.startswith(query)
        and len(q_words) >= TRUNCATED_MIN_WORDS
        and len(query) >= TRUNCATED_MIN_COVERAGE * len(candidate)
    ):
        return similarity
    # A typo or a hyphen: nearly equal, same name first, and the same numbered words,
    # since "Qwen2-VL" and "Qwen2.5-VL" differ by a few characters only.
    if (
        similarity >= FUZZY_MIN_SIMILARITY
        and q_words[:1] == c_words[:1]
        and abs(len(q_words) - len(c_words)) <= 1
        and _numbered(q_words) == _numbered(c_words)
    ):
        return similarity
    return None


def match_title(query: str, candidates: Iterable[tuple[str, str]]) -> TitleVerdict:
    """The candidate `(arxiv_id, title)` whose title is `query`'s, if exactly one paper is.

    Accepted: equality once normalised (case, Unicode, punctuation, whitespace, TeX);
    a truncated query covering at least 90 % of the title; or a similarity of at least
    0.95 with the same first word and the same numbered words. Two different papers
    that both qualify make the answer ambiguous, and nothing is accepted.
    """
    wanted = normalise_title(query)
    if not wanted:
        return TitleVerdict(None, reason="the title has no words to compare")
    accepted: dict[str, tuple[float, str]] = {}
    closest: tuple[float, str] | None = None
    for arxiv_id, title in candidates:
        normalised = normalise_title(title)
        score = _accepts(wanted, normalised)
        if score is not None:
            best = accepted.get(arxiv_id)
            if best is None or score > best[0]:
                accepted[arxiv_id] = (score, title)
        else:
            similarity = _similarity(wanted, normalised)
            if closest is None or similarity > closest[0]:
                closest = (similarity, title)
    if not accepted:
        if closest is None:
            return TitleVerdict(None, reason="arXiv has no paper whose title contains it")
        return TitleVerdict(
            None,
            reason=f"no arXiv title matches; closest: {closest[1]!r} (similarity {closest[0]:.2f})",
        )
    top = max(score for score, _ in accepted.values())
    best_ids = sorted(i for i, (score, _) in accepted.items() if score == top)
    if len(best_ids) > 1:
        return TitleVerdict(
            None, reason=f"ambiguous: {len(best_ids)} papers carry it ({', '.join(best_ids)})"
        )
    score, title = accepted[best_ids[0]]
    return TitleVerdict(best_ids[0], " ".join(title.split()), round(score, 4))


_URL_LIKE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)|^[\w.-]+\.[a-z]{2,}(?:/|$)", re.I)


_DATE_LIKE = re.compile(
    r"^(?:\d{2,4}[-./年]\d{1,2}(?:[-./月]\d{1,2}日?)?月?"
    r"|(?:\d{1,2}\s+)?[a-z]{3,9}\.?\s+\d{4}|[a-z]{3,9}\.?\s+\d{1,2},?\s+\d{4})$",
    re.I,
)


# Words of link texts that name a kind of link, not a paper.
# fmt: off
_GENERIC_WORDS = frozenset({
    "paper", "papers", "code", "codes", "github", "gitlab", "blog", "post", "project", "page",
    "homepage", "home", "website", "site", "demo", "demos", "model", "models", "dataset",
    "datasets", "data", "weights", "checkpoint", "checkpoints", "huggingface", "hugging",
    "face", "hf", "arxiv", "pdf", "link", "links", "here", "official", "repo", "repository",
    "video", "videos", "slides", "poster", "leaderboard", "benchmark", "docs", "documentation",
    "doc", "release", "download", "api", "online", "try", "it", "the", "a", "an", "and", "of",
    "this", "our", "modelscope", "zhihu", "twitter", "youtube", "bilibili", "report", "tech",
    "technical", "abstract", "html", "readme", "notebook", "colab", "space", "spaces",
    "collection", "card", "more", "details", "full", "text", "version", "v1", "v2", "v3",
    "translation", "chinese", "english", "issue", "issues", "license",
})


# fmt: on
_NON_LATIN_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "ARABIC", "CYRILLIC")


def looks_like_paper_title(text: str) -> bool:
    """Whether a link's text may be a paper's title worth a title search.

    Yes for "NVLM: Open Frontier-Class Multimodal LLMs", "Visual Instruction Tuning",
    "Pixtral 12B" (two words are enough: arXiv titles that short exist, and the match
    must then be exact). No for URLs, identifiers, dates, single words ("Ovis2"),
    generic link words ("Code", "Project Page", "Github"), and text mostly not in Latin
    script ("翻译", "万字长文总结…"): arXiv titles are in English.
    """
    text = " ".join(text.split())
    if not text or _URL_LIKE.search(text) or _DATE_LIKE.match(text):
        return False
    if parse_arxiv_id(text) is not None or ("/" in text and " " not in text):
        return False
    letters = [ch for ch in text if ch.isalpha()]
    foreign = sum(1 for ch in letters if unicodedata.name(ch, "").startswith(_NON_LATIN_SCRIPTS))
    if not letters or foreign * 10 > len(letters):
        return False
    # Words as written: "Yi-VL" is one word (a name), "Pixtral 12B" two.
    if sum(1 for word in text.split() if any(ch.isalnum() for ch in word)) < 2:
        return False
    return not all(word in _GENERIC_WORDS for word in normalise_title(text).split())


def title_key(link_text: str) -> str:
    """A link text as a title search and its match are keyed: white space folded, so a
    title broken over lines is one title."""
    return " ".join(link_text.split())


class RecordBatches(Protocol):
    """The links table, in memory (`pa.Table`) or read from disk batch by batch."""

    def to_batches(self) -> Iterable[pa.RecordBatch]: ...


def title_candidates(links: RecordBatches) -> list[str]:
    """Distinct link texts worth a title search, in first-seen order: texts of main links
    that lead to no paper yet (not arXiv links or mentions, no resolved ID) and look like
    a paper's title (`looks_like_paper_title`). `links` has the links table's columns."""
    judged: set[str] = set()
    found: dict[str, None] = {}
    for batch in links.to_batches():
        main = pc.and_(
            pc.and_(batch.column("is_main_link"), pc.is_null(batch.column("resolved_arxiv_id"))),
            pc.invert(pc.is_in(batch.column("kind"), value_set=_ARXIV_KINDS)),
        )
        # `unique` keeps first-seen order; each distinct text is keyed and judged once.
        for written in pc.unique(batch.column("link_text").filter(main)).to_pylist():
            text = title_key(written)
            if text not in judged:
                judged.add(text)
                if looks_like_paper_title(text):
                    found[text] = None
    return list(found)


_ARXIV_KINDS = pa.array(["arxiv", "arxiv_mention"])
