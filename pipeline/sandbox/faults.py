"""Faults from a compact text, for operators and the CLI (`--faults SPEC`).

    arxiv:503:0.25,arxiv:empty:0.15,hub:5xx:0.2,hub:429:0.05,hub:truncated:0.1,
    hub:quota:150/500/300,seed:7

is a night against faults: a quarter of arXiv's answers 503, 15% of its pages empty, a
fifth of the Hub's answers 5xx, 5% transient Hub 429s, a tenth of the Hub's bodies cut
short, and a Hub quota with 150 of its 500 requests per 300 s left at the start.

Grammar (items separated by commas, blanks around them ignored, an empty spec is no fault):

    seed:<int>                      seeds every probabilistic fault of the spec (default 0)
    <api>:<what>:<share>            <api> is arxiv or hub; <share> a probability in (0, 1]
    hub:429:<share>/<t>             a transient 429 whose RateLimit says t seconds to reset
    hub:quota:<left>[/<q>/<w>]      q requests per fixed window of w seconds (500/300 by
                                    default, the Hub's anonymous quota), <left> of them
                                    left at the start; then 429 until the window resets

<what>, for both APIs:
    500..599    that status with an empty body
    5xx         500, 502, 503 and 504, each with a quarter of the share
    truncated   the real answer's headers, Content-Length included, and half its body;
                then the connection closes
    429         arXiv: `Rate exceeded.` without Retry-After, as observed; the Hub: 429
                with `RateLimit: "api";r=0;t=3` and its `RateLimit-Policy`
arXiv only:
    empty       200 with `opensearch:totalResults` > 0 and no entry
Hub only (validation tests):
    huge-ints       counts and parameter totals past int64
    id-traversal    every `id` replaced by `../../../../etc/passwd`
    id-absolute     every `id` replaced by `/etc/passwd`
    id-url          every `id` replaced by a URL

The shares of one API add up to at most 1: a request gets at most one of them (see
`pipeline.sandbox.server`). The quota counts every Hub request, faulty or not.
"""

from __future__ import annotations

from dataclasses import replace

from pipeline.sandbox.wire import Api, Fault, FaultKind

ARXIV_RATE_EXCEEDED = b"Rate exceeded."
"""The body of arXiv's 429 (reference 1.5): no Retry-After, no other header documented."""
HUB_TRANSIENT_RESET_SECONDS = 3
HUB_QUOTA = 500
HUB_WINDOW_SECONDS = 300
_FIVE_XX = (500, 502, 503, 504)
_APIS: tuple[Api, ...] = ("arxiv", "hub")
_API_FAULTS: dict[tuple[Api, str], str] = {
    ("arxiv", "empty"): "empty_page",
    ("hub", "huge-ints"): "huge_ints",
    ("hub", "id-traversal"): "hostile_id:traversal",
    ("hub", "id-absolute"): "hostile_id:absolute",
    ("hub", "id-url"): "hostile_id:url",
}


class FaultSpecError(ValueError):
    """A fault spec that cannot be read; the message names the bad item."""


def faults_from_spec(spec: str) -> list[Fault]:
    """The faults a spec describes (module docstring), in its order."""
    seed = 0
    faults: list[Fault] = []
    items = [item.strip() for item in spec.split(",")] if spec.strip() else []
    for number, item in enumerate(items, start=1):
        where = f"fault spec item {number} {item!r}"
        if not item:
            raise FaultSpecError(f"{where}: empty (two commas in a row?)")
        head, _, rest = item.partition(":")
        if head == "seed":
            seed = _integer(rest, where, "the seed")
            continue
        if head not in _APIS:
            raise FaultSpecError(f"{where}: starts with {head!r}; expected arxiv, hub or seed")
        api: Api = "arxiv" if head == "arxiv" else "hub"
        what, colon, argument = rest.partition(":")
        if not colon:
            raise FaultSpecError(f"{where}: expected {api}:<what>:<share>")
        faults.extend(_faults(api, what, argument, where))
    _check_shares(faults)
    return [replace(fault, seed=seed) for fault in faults]


def _faults(api: Api, what: str, argument: str, where: str) -> list[Fault]:
    if api == "hub" and what == "quota":
        return [_quota(argument, where)]
    if api == "hub" and what == "429":
        share, slash, reset = argument.partition("/")
        seconds = _integer(reset, where, "the reset") if slash else HUB_TRANSIENT_RESET_SECONDS
        if seconds < 1:
            raise FaultSpecError(f"{where}: the reset must be at least 1 second")
        name = f"rate_limited:{seconds}"
        return [_fault(api, "api", share, where, name=name)]
    if what == "429":
        return [_fault(api, "status", argument, where, status=429, body=ARXIV_RATE_EXCEEDED)]
    if what == "5xx":
        quarter = _share(argument, where) / len(_FIVE_XX)
        return [
            Fault(api=api, kind="status", times=-1, status=status, probability=quarter)
            for status in _FIVE_XX
        ]
    if what.isdigit() and 500 <= int(what) <= 599:
        return [_fault(api, "status", argument, where, status=int(what))]
    if what == "truncated":
        return [_fault(api, "disconnect", argument, where)]
    api_fault = _API_FAULTS.get((api, what))
    if api_fault is None:
        known = ["429", "5xx", "500..599", "truncated"]
        known += [other for (owner, other) in _API_FAULTS if owner == api]
        if api == "hub":
            known.append("quota")
        raise FaultSpecError(f"{where}: unknown {api} fault {what!r}; known: {', '.join(known)}")
    return [_fault(api, "api", argument, where, name=api_fault)]


def _fault(
    api: Api,
    kind: FaultKind,
    share: str,
    where: str,
    *,
    status: int = 0,
    body: bytes = b"",
    name: str = "",
) -> Fault:
    probability = _share(share, where)
    return Fault(
        api=api, kind=kind, times=-1, status=status, body=body, name=name, probability=probability
    )


def _quota(argument: str, where: str) -> Fault:
    parts = argument.split("/")
    if len(parts) not in (1, 3):
        raise FaultSpecError(f"{where}: expected hub:quota:<left> or hub:quota:<left>/<q>/<w>")
    left = _integer(parts[0], where, "the requests left")
    quota = _integer(parts[1], where, "the quota q") if len(parts) == 3 else HUB_QUOTA
    window = _integer(parts[2], where, "the window w") if len(parts) == 3 else HUB_WINDOW_SECONDS
    if quota < 1 or window < 1:
        raise FaultSpecError(f"{where}: q and w must be at least 1")
    if not 0 <= left <= quota:
        raise FaultSpecError(f"{where}: the requests left must be between 0 and q={quota}")
    return Fault(
        api="hub", kind="quota", quota=quota, window_seconds=window, quota_left=left, times=-1
    )


def _share(text: str, where: str) -> float:
    try:
        share = float(text)
    except ValueError:
        raise FaultSpecError(f"{where}: the share {text!r} is not a number") from None
    if not 0.0 < share <= 1.0:
        raise FaultSpecError(f"{where}: the share must be in (0, 1], not {text}")
    return share


def _integer(text: str, where: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise FaultSpecError(f"{where}: {what} {text!r} is not a whole number") from None


def _check_shares(faults: list[Fault]) -> None:
    for api in _APIS:
        total = sum(f.probability for f in faults if f.api == api and f.kind != "quota")
        if total > 1.0 + 1e-9:
            raise FaultSpecError(
                f"fault spec: the {api} shares add up to {total:g}, more than 1"
                " (a request gets at most one fault)"
            )
