"""`faults_from_spec`: the compact text an operator switches faults on with."""

from __future__ import annotations

import pytest

from pipeline.sandbox import Fault, FaultSpecError, faults_from_spec
from pipeline.sandbox.faults import ARXIV_RATE_EXCEEDED


def test_a_first_night_against_faults() -> None:
    spec = (
        "arxiv:503:0.25,arxiv:empty:0.15,hub:5xx:0.2,hub:429:0.05,hub:truncated:0.1,"
        "hub:quota:150/500/300,seed:7"
    )
    assert faults_from_spec(spec) == [
        Fault("arxiv", "status", times=-1, status=503, probability=0.25, seed=7),
        Fault("arxiv", "api", times=-1, name="empty_page", probability=0.15, seed=7),
        Fault("hub", "status", times=-1, status=500, probability=0.05, seed=7),
        Fault("hub", "status", times=-1, status=502, probability=0.05, seed=7),
        Fault("hub", "status", times=-1, status=503, probability=0.05, seed=7),
        Fault("hub", "status", times=-1, status=504, probability=0.05, seed=7),
        Fault("hub", "api", times=-1, name="rate_limited:3", probability=0.05, seed=7),
        Fault("hub", "disconnect", times=-1, probability=0.1, seed=7),
        Fault("hub", "quota", times=-1, quota=500, window_seconds=300, quota_left=150, seed=7),
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("", []),
        ("  ", []),
        (
            "arxiv:429:0.5",
            [Fault("arxiv", "status", -1, status=429, body=ARXIV_RATE_EXCEEDED, probability=0.5)],
        ),
        ("arxiv:truncated:1", [Fault("arxiv", "disconnect", -1)]),
        ("hub:502:0.3", [Fault("hub", "status", -1, status=502, probability=0.3)]),
        ("hub:429:0.1/7", [Fault("hub", "api", -1, name="rate_limited:7", probability=0.1)]),
        (
            " hub:quota:10 ",
            [Fault("hub", "quota", -1, quota=500, window_seconds=300, quota_left=10)],
        ),
        ("hub:quota:0/3/2", [Fault("hub", "quota", -1, quota=3, window_seconds=2)]),
        ("hub:huge-ints:0.5", [Fault("hub", "api", -1, name="huge_ints", probability=0.5)]),
        (
            "hub:id-traversal:0.1",
            [Fault("hub", "api", -1, name="hostile_id:traversal", probability=0.1)],
        ),
        (
            "hub:id-absolute:0.1",
            [Fault("hub", "api", -1, name="hostile_id:absolute", probability=0.1)],
        ),
        ("hub:id-url:0.1", [Fault("hub", "api", -1, name="hostile_id:url", probability=0.1)]),
        # The seed applies to every item, wherever it is written.
        ("seed:3,hub:500:0.5", [Fault("hub", "status", -1, status=500, probability=0.5, seed=3)]),
        # Shares of different APIs are separate budgets; 1 means every request.
        (
            "arxiv:503:1,hub:503:1",
            [Fault("arxiv", "status", -1, status=503), Fault("hub", "status", -1, status=503)],
        ),
    ],
)
def test_items(spec: str, expected: list[Fault]) -> None:
    assert faults_from_spec(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("arxiv:503:0.25,,hub:5xx:0.2", "item 2 '': empty"),
        ("github:503:0.1", "item 1 'github:503:0.1': starts with 'github'"),
        ("hub:503", "item 1 'hub:503': expected hub:<what>:<share>"),
        ("hub:404:0.1", "item 1 'hub:404:0.1': unknown hub fault '404'"),
        ("arxiv:huge-ints:0.1", "unknown arxiv fault 'huge-ints'"),
        ("hub:empty:0.1", "unknown hub fault 'empty'; known: 429, 5xx"),
        ("arxiv:quota:10", "unknown arxiv fault 'quota'"),
        ("hub:5xx:often", "item 1 'hub:5xx:often': the share 'often' is not a number"),
        ("hub:5xx:0", "the share must be in (0, 1], not 0"),
        ("hub:5xx:1.5", "the share must be in (0, 1], not 1.5"),
        ("hub:429:0.1/0", "the reset must be at least 1 second"),
        ("hub:429:0.1/soon", "the reset 'soon' is not a whole number"),
        ("hub:quota:600", "the requests left must be between 0 and q=500"),
        ("hub:quota:1/2", "expected hub:quota:<left> or hub:quota:<left>/<q>/<w>"),
        ("hub:quota:1/10/0", "q and w must be at least 1"),
        ("hub:quota:many", "the requests left 'many' is not a whole number"),
        ("seed:x", "item 1 'seed:x': the seed 'x' is not a whole number"),
        ("arxiv:503:0.75,arxiv:empty:0.5", "the arxiv shares add up to 1.25, more than 1"),
        ("hub:5xx:0.5,hub:truncated:0.5,hub:429:0.1", "the hub shares add up to 1.1"),
    ],
)
def test_errors_name_the_bad_part(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as caught:
        faults_from_spec(spec)
    assert message in str(caught.value)


def test_a_quota_takes_no_share_of_the_draw() -> None:
    faults = faults_from_spec("hub:quota:0,hub:503:1")
    assert [f.kind for f in faults] == ["quota", "status"]
