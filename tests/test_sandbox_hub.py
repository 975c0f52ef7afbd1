"""The Hub double speaks the real wire formats (tests/fixtures/api-samples/hf_*.json)."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from pipeline.records import INT64_MAX
from pipeline.sandbox import Fault, Request, Response, Sandbox
from pipeline.sandbox.hub_api import (
    FixedWindow,
    HubDouble,
    check_fault_name,
    load_sample,
    synthetic_model,
)

SAMPLES = Path(__file__).parent / "fixtures" / "api-samples"
SEEDS = Path(__file__).parent.parent / "raw" / "seeds"
REPOS = load_sample("hub_repos.json")
PAPERS = load_sample("hub_papers.json")
MODEL_IDS = [body["id"] for body in REPOS["models"]]


def _sample(name: str) -> Any:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


REAL_MODELS = [
    _sample("hf_model_info_google-bert_bert-base-uncased.json"),
    _sample("hf_model_info_OrionLLM_GRM-2.6-Opus_image-text-to-text.json"),
]
REAL_DATASET = _sample("hf_dataset_info_LanguageShades_BiasShades_gated_auto.json")
REAL_COLLECTION = _sample("hf_collection_prism-ml_bonsai-2.json")
REAL_PAPER = _sample("hf_paper_2410.24164_pi0_TRIMMED.json")
REAL_PAPER_404 = _sample("hf_paper_not_found_2609.39403_http404.json")

# `gguf` is in no captured body but documented for GGUF repos (reference §2.1, ModelInfo).
MODEL_KEYS_ALLOWED = set().union(*(m.keys() for m in REAL_MODELS)) | {"gguf"}
# `safetensors` is absent when a repo has no safetensors weights (reference §2.1).
MODEL_KEYS_REQUIRED = set.intersection(*(set(m) for m in REAL_MODELS)) - {"safetensors"}
# No real space body was found: huggingface_hub's SpaceInfo fields (reference §2.6).
SPACE_KEYS_ALLOWED = {
    "_id",
    "id",
    "author",
    "sha",
    "lastModified",
    "createdAt",
    "private",
    "gated",
    "disabled",
    "likes",
    "sdk",
    "subdomain",
    "host",
    "runtime",
    "models",
    "datasets",
    "tags",
    "siblings",
    "cardData",
    "usedStorage",
}
PAPER_OPTIONAL_KEYS = {"githubRepo", "githubStars", "projectPage"}
# A listing item without `full`/`expand`, as huggingface_hub's list_models receives it.
LISTING_KEYS = {
    "_id",
    "id",
    "likes",
    "trendingScore",
    "private",
    "downloads",
    "tags",
    "pipeline_tag",
    "library_name",
    "createdAt",
    "modelId",
}


def get(
    double: HubDouble,
    path: str,
    query: list[tuple[str, str]] | None = None,
    *,
    token: bool = False,
    fault: str | None = None,
) -> Response:
    return double.handle(
        Request(
            api="hub",
            method="GET",
            path=path,
            query=query or [],
            form=[],
            headers={"authorization": "Bearer hf_x"} if token else {},
            fault=Fault(api="hub", kind="api", name=fault) if fault else None,
        )
    )


def body_of(response: Response) -> Any:
    return json.loads(response.body)


@pytest.fixture
def double() -> HubDouble:
    return HubDouble()


# -- key sets ------------------------------------------------------------------------
@pytest.mark.parametrize("repo_id", MODEL_IDS)
def test_model_bodies_have_the_real_key_set(double: HubDouble, repo_id: str) -> None:
    response = get(double, f"/api/models/{repo_id}")
    assert response.status == 200
    keys = set(body_of(response))
    assert keys <= MODEL_KEYS_ALLOWED
    assert keys >= MODEL_KEYS_REQUIRED
    assert body_of(response)["id"] == body_of(response)["modelId"] == repo_id


@pytest.mark.parametrize("body", REPOS["datasets"], ids=lambda b: b["id"])
def test_dataset_bodies_have_the_real_key_set(body: dict[str, Any]) -> None:
    assert list(body) == list(REAL_DATASET)


@pytest.mark.parametrize("body", REPOS["spaces"], ids=lambda b: b["id"])
def test_space_bodies_have_spaceinfo_keys_only(body: dict[str, Any]) -> None:
    assert set(body) <= SPACE_KEYS_ALLOWED
    assert {"_id", "id", "sdk", "cardData", "likes"} <= set(body)


def _item_keys(collection: dict[str, Any], item_type: str) -> set[str]:
    keys = [set(i) - {"note"} for i in collection["items"] if i["type"] == item_type]
    return set().union(*keys) if keys else set()


@pytest.mark.parametrize("collection", REPOS["collections"], ids=lambda c: c["slug"])
def test_collection_bodies_have_the_real_key_sets(collection: dict[str, Any]) -> None:
    assert list(collection) == list(REAL_COLLECTION)
    assert set(collection["owner"]) == set(REAL_COLLECTION["owner"])
    for item_type in ("model", "space"):
        mine = _item_keys(collection, item_type)
        if mine:
            assert mine == _item_keys(REAL_COLLECTION, item_type)
    # No real dataset or paper item was captured: datasets as paper pages list them, papers
    # per huggingface.js's collection spec (reference §2.5).
    collection_extras = {"type", "position", "_id"}
    if datasets := _item_keys(collection, "dataset"):
        assert datasets == set(REAL_PAPER["linkedDatasets"][0]) | collection_extras
    if papers := _item_keys(collection, "paper"):
        assert (
            papers
            == {
                "id",
                "title",
                "publishedAt",
                "upvotes",
                "thumbnailUrl",
                "isUpvotedByUser",
            }
            | collection_extras
        )


@pytest.mark.parametrize("paper", PAPERS["papers"], ids=lambda p: p["id"])
def test_paper_bodies_have_the_real_key_set(paper: dict[str, Any]) -> None:
    assert set(paper) - PAPER_OPTIONAL_KEYS == set(REAL_PAPER)
    for model in paper["linkedModels"]:
        assert set(model) == set(REAL_PAPER["linkedModels"][0])
    assert paper["numTotalModels"] >= len(paper["linkedModels"])


def test_collection_model_items_agree_with_the_model_bodies() -> None:
    models = {body["id"]: body for body in REPOS["models"]}
    for collection in REPOS["collections"]:
        for item in collection["items"]:
            if item["type"] == "model":
                model = models[item["id"]]
                expected = (model.get("safetensors") or model.get("gguf") or {}).get("total")
                assert item.get("numParameters") == expected
                assert item["downloads"] == model["downloads"]


# -- sample data: labelled, and covering what the seeds link to ------------------------
def _text_fields() -> list[tuple[str, str]]:
    fields = [
        (f"collection {c['slug']} description", c["description"]) for c in REPOS["collections"]
    ]
    fields += [(f"dataset {d['id']} description", d["description"]) for d in REPOS["datasets"]]
    fields += [
        (f"space {s['id']} short_description", s["cardData"]["short_description"])
        for s in REPOS["spaces"]
    ]
    for paper in PAPERS["papers"]:
        fields += [(f"paper {paper['id']} {key}", paper[key]) for key in ("summary", "ai_summary")]
    for model in REPOS["models"]:
        for key in ("extra_gated_heading", "extra_gated_prompt"):
            if key in model["cardData"]:
                fields.append((f"model {model['id']} {key}", model["cardData"][key]))
    for collection in REPOS["collections"]:
        for item in collection["items"]:
            for key in ("shortDescription", "ai_short_description"):
                if key in item:
                    fields.append((f"item {item['id']} {key}", item[key]))
            if "note" in item:
                fields.append((f"item {item['id']} note", item["note"]["text"]))
    return fields


@pytest.mark.parametrize(("where", "text"), _text_fields())
def test_every_free_text_field_says_it_is_sample_data(where: str, text: str) -> None:
    assert "sample data" in text.lower(), where


_HUB_LINK = re.compile(r"https?://(?:huggingface\.co|hf-mirror\.com)/([^)\s\"'>]+)")


def _seed_hub_entities() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for path in sorted(SEEDS.glob("*.txt")):
        for match in _HUB_LINK.finditer(path.read_text(encoding="utf-8")):
            parts = match.group(1).rstrip("/").split("/")
            if parts[0] in ("datasets", "spaces", "collections") and len(parts) >= 3:
                found.append((parts[0], "/".join(parts[1:3])))
            elif parts[0] == "papers":
                found.append(("papers", parts[1]))
            elif parts[0] not in ("blog", "docs", "learn") and len(parts) >= 2:
                found.append(("models", "/".join(parts[:2])))
    return sorted(set(found))


def test_the_seeds_link_to_hub_entities() -> None:  # guards the coverage test below
    assert len(_seed_hub_entities()) >= 20


@pytest.mark.parametrize(("kind", "entity_id"), _seed_hub_entities())
def test_every_hub_entity_the_seeds_link_to_is_served(
    double: HubDouble, kind: str, entity_id: str
) -> None:
    response = get(double, f"/api/{kind}/{entity_id}")
    if response.status == 307:
        response = get(double, response.headers["location"])
    assert response.status == 200, (kind, entity_id)


def test_the_deliberate_cases_exist(double: HubDouble) -> None:
    models = {body["id"]: body for body in REPOS["models"]}
    assert REPOS["renamed"]["models"]["vikhyatk/moondream2"] in models
    assert {m["gated"] for m in models.values()} >= {"auto", "manual"}
    gguf_only = [m for m in models.values() if "gguf" in m and "safetensors" not in m]
    assert gguf_only and all(isinstance(m["gguf"]["total"], int) for m in gguf_only)
    no_weights = [m for m in models.values() if "gguf" not in m and "safetensors" not in m]
    assert [m["id"] for m in no_weights] == ["01-ai/Yi-VL-34B"]
    with_github = [p for p in PAPERS["papers"] if "githubRepo" in p and p["linkedModels"]]
    assert len(with_github) >= 3


# -- endpoints -----------------------------------------------------------------------
def test_model_without_expand_is_the_full_body(double: HubDouble) -> None:
    body = body_of(get(double, "/api/models/Qwen/Qwen2-VL-72B"))
    assert body == next(m for m in REPOS["models"] if m["id"] == "Qwen/Qwen2-VL-72B")


@pytest.mark.parametrize(
    ("param", "props", "expected"),
    [
        ("expand[]", ["safetensors", "downloads"], {"_id", "id", "safetensors", "downloads"}),
        ("expand", ["safetensors", "downloads"], {"_id", "id", "safetensors", "downloads"}),
        # An expanded property the repo does not have is simply omitted.
        ("expand[]", ["gguf", "likes"], {"_id", "id", "likes"}),
        ("expand[]", ["inference"], {"_id", "id"}),
    ],
)
def test_expand_returns_only_those_properties_plus_ids(
    double: HubDouble, param: str, props: list[str], expected: set[str]
) -> None:
    query = [(param, prop) for prop in props]
    body = body_of(get(double, "/api/models/Qwen/Qwen2-VL-72B", query))
    assert set(body) == expected


def test_expand_with_an_unknown_property_is_a_400(double: HubDouble) -> None:
    response = get(double, "/api/models/Qwen/Qwen2-VL-72B", [("expand[]", "numParameters")])
    assert response.status == 400
    assert "expand" in body_of(response)["error"]


def test_datasets_and_spaces_answer_with_expand(double: HubDouble) -> None:
    dataset = get(double, "/api/datasets/OpenGVLab/MMPR-v1.1", [("expand[]", "likes")])
    assert body_of(dataset) == {
        "_id": body_of(dataset)["_id"],
        "id": "OpenGVLab/MMPR-v1.1",
        "likes": 51,
    }
    space = body_of(get(double, "/api/spaces/Qwen/Qwen2.5-VL", [("expand[]", "sdk")]))
    assert set(space) == {"_id", "id", "sdk"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c",
        "/api/collections/OpenGVLab/an-old-title-673e1019b66e2218f68d7c1c",  # old slug, same id
        "/api/collections/OpenGVLab/internvl-25",  # the short form of shareUrl
    ],
)
def test_collection_by_slug_old_slug_or_short_slug(double: HubDouble, path: str) -> None:
    response = get(double, path)
    assert response.status == 200
    assert body_of(response)["slug"] == "OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c"


def test_unknown_collection_is_a_404(double: HubDouble) -> None:
    assert get(double, "/api/collections/OpenGVLab/nothing-000000000000000000000000").status == 404
    # Same id under another namespace is another collection.
    assert (
        get(double, "/api/collections/someone/internvl-25-673e1019b66e2218f68d7c1c").status == 404
    )


def test_paper_page_and_the_real_404_body(double: HubDouble) -> None:
    page = get(double, "/api/papers/2409.12191")
    assert page.status == 200
    assert body_of(page)["githubRepo"] == "https://github.com/QwenLM/Qwen2-VL"
    missing = get(double, "/api/papers/2609.39403")
    assert missing.status == 404
    assert body_of(missing) == REAL_PAPER_404


@pytest.mark.parametrize(
    ("token", "status", "message"),
    [(False, 401, "Invalid username or password."), (True, 404, "Repository not found")],
)
def test_missing_repo_is_401_anonymously_and_404_with_a_token(
    double: HubDouble, token: bool, status: int, message: str
) -> None:
    for kind in ("models", "datasets", "spaces"):
        response = get(double, f"/api/{kind}/nobody/nothing", token=token)
        assert response.status == status
        assert response.headers["x-error-code"] == "RepoNotFound"
        assert response.headers["x-error-message"] == message
        assert body_of(response) == {"error": message}


def test_renamed_repo_redirects_relatively_to_its_new_name(double: HubDouble) -> None:
    response = get(double, "/api/models/vikhyatk/moondream2", [("expand[]", "likes")])
    assert response.status == 307
    assert response.headers["location"] == "/api/models/moondream/moondream2"
    assert body_of(get(double, response.headers["location"]))["id"] == "moondream/moondream2"


@pytest.mark.parametrize(
    ("status", "text"),
    [(301, "Moved Permanently"), (302, "Found"), (308, "Permanent Redirect")],
)
def test_rename_status_can_be_any_redirect(status: int, text: str) -> None:
    response = get(HubDouble(rename_status=status), "/api/models/vikhyatk/moondream2")
    assert response.status == status
    assert response.headers["location"] == "/api/models/moondream/moondream2"
    assert response.body == f"{text}. Redirecting to /api/models/moondream/moondream2".encode()


def test_rename_status_must_be_a_redirect() -> None:
    with pytest.raises(ValueError, match="rename_status"):
        HubDouble(rename_status=200)


def test_disabled_repo_is_a_403(double: HubDouble) -> None:
    response = get(double, "/api/models/sample-org/disabled-model")
    assert response.status == 403
    assert response.headers["x-error-message"] == "Access to this resource is disabled."


def test_listing_by_arxiv_tag_paginates_with_a_link_header(double: HubDouble) -> None:
    query = [("filter", "arxiv:2412.05271"), ("limit", "4")]
    first = get(double, "/api/models", query)
    ids = [item["id"] for item in body_of(first)]
    assert len(ids) == 4
    assert all(set(item) <= LISTING_KEYS for item in body_of(first))
    next_url = re.fullmatch(r'<([^>]+)>; rel="next"', first.headers["link"])
    assert next_url is not None
    url = httpx.URL(next_url.group(1))
    rest = get(double, url.path, list(url.params.multi_items()))
    ids += [item["id"] for item in body_of(rest)]
    assert "link" not in rest.headers
    sizes = ("1B", "2B", "4B", "8B", "26B", "38B", "78B")
    assert sorted(ids) == sorted(f"OpenGVLab/InternVL2_5-{size}" for size in sizes)


def test_arxiv_repos_lists_models_datasets_and_spaces(double: HubDouble) -> None:
    body = body_of(get(double, "/api/arxiv/2412.05271/repos"))
    assert set(body) == {"models", "datasets", "spaces"}
    assert len(body["models"]) == 7
    assert [d["id"] for d in body["datasets"]] == ["OpenGVLab/MMPR-v1.1"]
    assert body_of(get(double, "/api/arxiv/2609.39403/repos")) == {
        "models": [],
        "datasets": [],
        "spaces": [],
    }


# -- rate limits ---------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    "path",
    [
        "/api/models/Qwen/Qwen2-VL-72B",
        "/api/models/nobody/nothing",
        "/api/models/vikhyatk/moondream2",
        "/api/papers/2609.39403",
        "/api/collections/OpenGVLab/internvl-25",
    ],
)
def test_every_answer_carries_ratelimit_headers(path: str) -> None:
    double = HubDouble(quota=500, window_seconds=300, clock=Clock())
    response = get(double, path)
    assert response.headers["ratelimit"] == '"api";r=499;t=300'
    assert response.headers["ratelimit-policy"] == '"fixed window";"api";q=500;w=300'


def test_fixed_window_quota_then_429_then_reset() -> None:
    clock = Clock()
    double = HubDouble(quota=3, window_seconds=60, clock=clock)
    path = "/api/models/Qwen/Qwen2-VL-72B"
    remaining = []
    for _ in range(3):
        remaining.append(get(double, path).headers["ratelimit"])
        clock.now += 5
    assert remaining == ['"api";r=2;t=60', '"api";r=1;t=55', '"api";r=0;t=50']
    refused = get(double, path)
    assert refused.status == 429
    assert refused.headers["ratelimit"] == '"api";r=0;t=45'
    assert refused.headers["ratelimit-policy"] == '"fixed window";"api";q=3;w=60'
    assert "retry-after" not in refused.headers  # the Hub documents only the RateLimit pair
    clock.now += 45
    again = get(double, path)
    assert again.status == 200
    assert again.headers["ratelimit"] == '"api";r=2;t=60'


# -- API faults ----------------------------------------------------------------------
def test_fault_redirect_loop_points_back_and_forth(double: HubDouble) -> None:
    first = get(double, "/api/models/Qwen/Qwen2-VL-72B", fault="redirect_loop")
    assert first.status == 307
    second = get(double, first.headers["location"], fault="redirect_loop")
    assert second.headers["location"] == "/api/models/Qwen/Qwen2-VL-72B"


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("/api/models/Qwen/Qwen2-VL-72B", lambda b: b["downloads"] == "many"),
        ("/api/models/Qwen/Qwen2-VL-72B", lambda b: b["safetensors"]["total"] == "73405560320"),
        ("/api/datasets/OpenGVLab/MMPR-v1.1", lambda b: b["downloads"] == "many"),
        ("/api/papers/2409.12191", lambda b: b["upvotes"] == "many"),
        ("/api/collections/OpenGVLab/internvl-25", lambda b: b["items"][0]["id"] == 42),
    ],
)
def test_fault_wrong_types(double: HubDouble, path: str, check: Any) -> None:
    assert check(body_of(get(double, path, fault="wrong_types")))


@pytest.mark.parametrize(
    ("path", "fault", "dropped"),
    [
        ("/api/models/Qwen/Qwen2-VL-72B", "drop_field", "id"),
        ("/api/models/Qwen/Qwen2-VL-72B", "drop_field:safetensors", "safetensors"),
        ("/api/collections/OpenGVLab/internvl-25", "drop_field", "items"),
        ("/api/papers/2409.12191", "drop_field:upvotes", "upvotes"),
    ],
)
def test_fault_drop_field(double: HubDouble, path: str, fault: str, dropped: str) -> None:
    healthy = body_of(get(double, path))
    broken = body_of(get(double, path, fault=fault))
    assert dropped in healthy
    assert set(healthy) - set(broken) == {dropped}


def test_fault_rate_limited_has_headers_and_bare_has_none(double: HubDouble) -> None:
    limited = get(double, "/api/models/Qwen/Qwen2-VL-72B", fault="rate_limited")
    assert limited.status == 429
    assert re.fullmatch(r'"api";r=0;t=\d+', limited.headers["ratelimit"])
    assert limited.headers["ratelimit-policy"] == '"fixed window";"api";q=500;w=300'
    bare = get(double, "/api/models/Qwen/Qwen2-VL-72B", fault="rate_limited_bare")
    assert bare.status == 429
    assert not {"ratelimit", "ratelimit-policy", "retry-after"} & set(bare.headers)


def test_fault_rate_limited_with_a_reset_is_a_transient_429() -> None:
    double = HubDouble(clock=Clock())  # 300 s to the window's end
    limited = get(double, "/api/models/Qwen/Qwen2-VL-72B", fault="rate_limited:3")
    assert limited.status == 429
    assert limited.headers["ratelimit"] == '"api";r=0;t=3'
    assert limited.headers["ratelimit-policy"] == '"fixed window";"api";q=500;w=300'
    assert "retry-after" not in limited.headers
    # It counted against the window, like any request.
    after = get(double, "/api/models/Qwen/Qwen2-VL-72B")
    assert after.headers["ratelimit"] == '"api";r=498;t=300'


def test_fixed_window_with_requests_left_at_the_start() -> None:
    clock = Clock()
    window = FixedWindow(5, 10, left=2, clock=clock)
    assert [window.take() for _ in range(3)] == [(1, 10), (0, 10), (-1, 10)]
    clock.now += 9.5
    assert window.take() == (-2, 1)  # never t=0: the Hub's t is whole seconds
    clock.now += 0.5
    assert [window.take()[0] for _ in range(6)] == [4, 3, 2, 1, 0, -1]  # the full quota


@pytest.mark.parametrize(
    ("quota", "window", "left"), [(0, 10, None), (5, 0, None), (5, 10, 6), (5, 10, -1)]
)
def test_fixed_window_refuses_impossible_settings(
    quota: int, window: int, left: int | None
) -> None:
    with pytest.raises(ValueError, match=r"quota|left"):
        FixedWindow(quota, window, left=left)


# -- hostile answers (the pipeline's validation must refuse them) -----------------------
@pytest.mark.parametrize(
    ("path", "values"),
    [
        (
            "/api/models/Qwen/Qwen2-VL-72B",
            lambda b: [b["downloads"], b["likes"], b["safetensors"]["total"]],
        ),
        (
            "/api/models/mistralai/Mistral-Large-3-675B-Instruct-2512-GGUF",
            lambda b: [b["downloads"], b["likes"], b["gguf"]["total"]],
        ),
        ("/api/datasets/OpenGVLab/MMPR-v1.1", lambda b: [b["downloads"], b["likes"]]),
        (
            "/api/papers/2409.12191",
            lambda b: [b["upvotes"]] + [m["numParameters"] for m in b["linkedModels"]],
        ),
        (
            "/api/collections/OpenGVLab/internvl-25",
            lambda b: [b["upvotes"]] + [i["downloads"] for i in b["items"] if "downloads" in i],
        ),
    ],
)
def test_fault_huge_ints_go_past_int64(double: HubDouble, path: str, values: Any) -> None:
    found = values(body_of(get(double, path, fault="huge_ints")))
    assert found and all(value > INT64_MAX for value in found)


def test_fault_huge_ints_parameter_counts_each_fit_but_their_sum_does_not(
    double: HubDouble,
) -> None:
    body = body_of(get(double, "/api/models/Qwen/Qwen2-VL-72B", fault="huge_ints"))
    parameters = body["safetensors"]["parameters"]
    assert len(parameters) >= 2 and all(n <= INT64_MAX for n in parameters.values())
    assert sum(parameters.values()) == body["safetensors"]["total"] > INT64_MAX
    # The JSON itself stays valid: an arbitrary-precision reader gets the exact numbers.
    assert json.loads(get(double, "/api/models/Qwen/Qwen2-VL-72B", fault="huge_ints").body)


def test_fault_huge_ints_respects_expand(double: HubDouble) -> None:
    response = get(
        double, "/api/models/Qwen/Qwen2-VL-72B", [("expand[]", "likes")], fault="huge_ints"
    )
    body = body_of(response)
    assert set(body) == {"_id", "id", "likes"} and body["likes"] > INT64_MAX


@pytest.mark.parametrize(
    ("form", "hostile"),
    [
        ("traversal", "../../../../etc/passwd"),
        ("absolute", "/etc/passwd"),
        ("url", "https://evil.example/api/models/x"),
    ],
)
@pytest.mark.parametrize(
    ("path", "ids"),
    [
        ("/api/models/Qwen/Qwen2-VL-72B", lambda b: [b["id"], b["modelId"]]),
        ("/api/spaces/Qwen/Qwen2.5-VL", lambda b: [b["id"]]),
        ("/api/papers/2409.12191", lambda b: [b["id"]] + [m["id"] for m in b["linkedModels"]]),
        ("/api/collections/OpenGVLab/internvl-25", lambda b: [i["id"] for i in b["items"]]),
    ],
)
def test_fault_hostile_id(double: HubDouble, form: str, hostile: str, path: str, ids: Any) -> None:
    healthy = body_of(get(double, path))
    body = body_of(get(double, path, fault=f"hostile_id:{form}"))
    assert set(ids(body)) == {hostile}
    assert body.get("_id") == healthy.get("_id")  # only the ids the fault names change


@pytest.mark.parametrize(
    ("name", "complaint"),
    [
        ("no_such_fault", "unknown Hub API fault"),
        ("hostile_id", "say which id"),
        ("hostile_id:home", "say which id"),
        ("rate_limited:0", "whole seconds"),
        ("rate_limited:soon", "whole seconds"),
        ("huge_ints:3", "takes no argument"),
        ("drop_field:", "name the key"),
    ],
)
def test_unknown_or_malformed_fault_names_are_refused(name: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        check_fault_name(name)
    with pytest.raises(ValueError, match=complaint):
        get(HubDouble(), "/api/models/Qwen/Qwen2-VL-72B", fault=name)


# -- synthetic models (scale benchmark) -------------------------------------------------
def test_synthesize_unknown_gives_deterministic_bodies_to_valid_ids_only() -> None:
    synthetic = HubDouble(synthesize_unknown=True)
    first = get(synthetic, "/api/models/sample-org/model-0042")
    assert first.status == 200
    assert first.body == get(synthetic, "/api/models/sample-org/model-0042").body
    assert body_of(first) == synthetic_model("sample-org/model-0042")
    assert set(body_of(first)) <= MODEL_KEYS_ALLOWED
    assert get(synthetic, "/api/models/sample-org/model-0043").body != first.body
    assert get(synthetic, "/api/models/-bad-/..name").status == 401
    assert get(HubDouble(), "/api/models/sample-org/model-0042").status == 401


# -- over HTTP, through the lead's Sandbox ----------------------------------------------
def test_served_over_loopback_with_relative_redirects() -> None:
    with Sandbox(hub=HubDouble()) as sandbox:
        with httpx.Client(base_url=sandbox.hf_endpoint, follow_redirects=True) as client:
            response = client.get("/api/models/vikhyatk/moondream2")
        assert response.status_code == 200
        assert response.json()["id"] == "moondream/moondream2"
        assert [r.status for r in sandbox.requests("hub")] == [307, 200]


def test_max_in_flight_counts_concurrent_answers() -> None:
    double = HubDouble(latency_seconds=0.05)
    with (
        Sandbox(hub=double) as sandbox,
        httpx.Client(base_url=sandbox.hf_endpoint) as client,
        ThreadPoolExecutor(max_workers=3) as pool,
    ):
        list(pool.map(lambda _: client.get("/api/papers/2409.12191"), range(6)))
    assert 2 <= double.max_in_flight <= 3
