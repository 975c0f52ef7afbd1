"""Hub bodies -> records (pure): real bodies from tests/fixtures/api-samples, made hostile
one field at a time. A hostile identity refuses the whole answer; a hostile value costs
that field alone, named in the reason, and the entity stays ok."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline.records import INT64_MAX, HubRepoRecord, LinkedModel, PaperPageRecord, RepoType
from pipeline.resolve.common import PermanentFailure
from pipeline.resolve.hub_bodies import (
    Body,
    CollectionBody,
    DatasetBody,
    ModelBody,
    PaperBody,
    Resolution,
    count_problem,
    is_canonical_collection_id,
    is_sendable_repo_id,
    paper_record,
    params_from_name,
    repo_record,
    validate,
    validate_answer,
)
from pipeline.sandbox.hub_api import load_sample

SAMPLES = Path(__file__).resolve().parent / "fixtures" / "api-samples"
BERT = "google-bert/bert-base-uncased"
BONSAI = "prism-ml/bonsai-2-6aab292b9fa72a78652429df"
PI0 = "2410.24164"
FETCHED = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
PAST_INT64 = 2**63
HUGE = 10**40

Json = dict[str, Any]
Edit = Callable[[Json], None]


def sample(name: str) -> Json:
    data: Json = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return data


def bert() -> Json:
    return sample("hf_model_info_google-bert_bert-base-uncased.json")


def bonsai() -> Json:
    return sample("hf_collection_prism-ml_bonsai-2.json")


def pi0() -> Json:
    return sample("hf_paper_2410.24164_pi0_TRIMMED.json")


def encode(body: Json) -> bytes:
    return json.dumps(body).encode()


def model_record(body: Json, asked: str = BERT, served: str | None = None) -> HubRepoRecord:
    parsed = validate_answer(ModelBody, encode(body), asked, served or asked)
    return repo_record("model", asked, Resolution("ok", body=parsed, fetched_at=FETCHED))


def paper(body: Json) -> PaperPageRecord:
    parsed = validate_answer(PaperBody, encode(body), PI0, PI0)
    return paper_record(PI0, Resolution("ok", body=parsed, fetched_at=FETCHED))


def edit(path: str, value: object) -> Edit:
    """Set the value at a dotted path (`safetensors.parameters.F32`, `linkedModels.0.id`)."""

    def apply(body: Json) -> None:
        *parents, last = path.split(".")
        node: Any = body
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


# -- the real samples are clean --------------------------------------------------------------
def test_the_real_samples_make_clean_records() -> None:
    model = model_record(bert())
    assert (model.status, model.status_reason, model.repo_id) == ("ok", None, BERT)
    assert (model.downloads, model.likes, model.params_total) == (60478923, 2498, 110106428)
    page = paper(pi0())
    assert (page.status, page.status_reason, page.upvotes, page.num_total_models) == (
        "ok",
        None,
        31,
        111,
    )
    assert len(page.linked_models) == 2
    parsed = validate_answer(CollectionBody, encode(bonsai()), BONSAI, BONSAI)
    collection = repo_record("collection", BONSAI, Resolution("ok", body=parsed))
    assert (collection.status, collection.status_reason, collection.upvotes) == ("ok", None, 149)


# -- a count out of range costs that field alone -------------------------------------------
@pytest.mark.parametrize(
    ("change", "field_name", "problem", "check"),
    [
        (
            edit("downloads", PAST_INT64),
            "downloads",
            f"{PAST_INT64} is past the int64 maximum",
            lambda r: r.downloads is None and r.likes == 2498,
        ),
        (edit("likes", -3), "likes", "-3 is negative", lambda r: r.likes is None),
        (edit("downloads", INT64_MAX), None, None, lambda r: r.downloads == INT64_MAX),
        (edit("likes", 0), None, None, lambda r: r.likes == 0),
        (
            edit("safetensors.total", HUGE),
            "safetensors.total",
            "past the int64 maximum",
            # As if absent: the total is the sum of the dtypes.
            lambda r: r.params_total == 110106428 and r.params_source == "safetensors",
        ),
        (
            edit("safetensors", {"parameters": {"F32": -1}, "total": -1}),
            "safetensors.total",
            "-1 is negative",
            # Nothing left from safetensors, and the name states no size: no count at all.
            lambda r: r.params_total is None and r.params_source is None,
        ),
        (
            edit("safetensors", {"parameters": {"F32": INT64_MAX, "BF16": INT64_MAX}}),
            "safetensors.parameters",
            "their sum 18446744073709551614 is past the int64 maximum",
            lambda r: r.params_total is None,
        ),
        (
            edit("safetensors", {"parameters": {"F32": 5, "BF16": -1}}),
            "safetensors.parameters.BF16",
            "-1 is negative",
            # The sum of what is left would undercount: unknown, not smaller.
            lambda r: r.params_total is None and r.params_by_dtype == (),
        ),
        (
            edit("safetensors", {"parameters": {"F32": 5, "BF16": PAST_INT64}, "total": 77}),
            "safetensors.parameters.BF16",
            "past the int64 maximum",
            lambda r: r.params_total == 77 and r.params_source == "safetensors",
        ),
        (
            edit("gguf", {"total": PAST_INT64}),
            None,  # safetensors is the source: the GGUF count is never read
            None,
            lambda r: r.params_source == "safetensors",
        ),
    ],
)
def test_a_count_out_of_range_is_left_out_and_named(
    change: Edit,
    field_name: str | None,
    problem: str | None,
    check: Callable[[HubRepoRecord], bool],
) -> None:
    body = bert()
    change(body)
    record = model_record(body)
    assert record.status == "ok"
    if field_name is None:
        assert record.status_reason is None
    else:
        assert record.status_reason is not None
        assert f"field '{field_name}' left out: " in record.status_reason
        assert problem is not None and problem in record.status_reason
    assert check(record), record
    # Every count the record carries fits the tables' int64 columns.
    counts = [record.downloads, record.likes, record.params_total]
    counts += [count for _, count in record.params_by_dtype]
    pa.array(counts, pa.int64())


def test_gguf_count_out_of_range_falls_to_the_name() -> None:
    body = {"id": "org/model-7B", "gguf": {"total": PAST_INT64}, "downloads": -1}
    record = model_record(body, asked="org/model-7B")
    assert (record.params_total, record.params_source) == (7_000_000_000, "name")
    assert record.status_reason == (
        "field 'downloads' left out: -1 is negative; "
        f"field 'gguf.total' left out: {PAST_INT64} is past the int64 maximum"
    )


def test_a_size_in_the_name_past_int64_is_no_size() -> None:
    assert params_from_name("org/model-" + "9" * 30 + "B") is None
    assert params_from_name("org/model-9223372036B") == 9_223_372_036_000_000_000


@pytest.mark.parametrize(
    ("change", "field_name", "check"),
    [
        (edit("upvotes", PAST_INT64), "upvotes", lambda p: p.upvotes is None),
        (edit("numTotalModels", -5), "numTotalModels", lambda p: p.num_total_models is None),
        (edit("githubStars", HUGE), "githubStars", lambda p: p.github_stars is None),
        (
            edit("linkedModels.0.numParameters", PAST_INT64),
            "linkedModels.0.numParameters",
            lambda p: p.linked_models[0].params_total is None and len(p.linked_models) == 2,
        ),
        (
            edit("linkedModels.1.downloads", -1),
            "linkedModels.1.downloads",
            lambda p: p.linked_models[1].downloads is None,
        ),
        (
            edit("linkedModels.0.id", "../../../../etc/passwd"),
            "linkedModels.0.id",
            lambda p: len(p.linked_models) == 1 and "passwd" not in repr(p.linked_models),
        ),
        (
            edit("linkedModels.1.id", "https://evil.test/x"),
            "linkedModels.1.id",
            lambda p: len(p.linked_models) == 1,
        ),
        (
            edit("projectPage", "javascript:alert(1)"),
            "projectPage",
            lambda p: p.project_page is None,
        ),
    ],
)
def test_paper_page_values_out_of_range_are_left_out_and_named(
    change: Edit, field_name: str, check: Callable[[PaperPageRecord], bool]
) -> None:
    body = pi0()
    change(body)
    record = paper(body)
    assert record.status == "ok"
    assert record.status_reason is not None
    assert record.status_reason.startswith(f"field '{field_name}' left out: ")
    assert check(record), record


@pytest.mark.parametrize(
    ("github_repo", "expected"),
    [
        ("https://github.com/Physical-Intelligence/openpi", "physical-intelligence/openpi"),
        ("https://github.com/../../etc/passwd", None),
        ("https://github.com/x/y/blob/main/../../../../root/.ssh", None),
        ("https://example.com/not/github", None),
    ],
)
def test_a_paper_page_code_repo_must_be_a_valid_github_repo(
    github_repo: str, expected: str | None
) -> None:
    body = pi0()
    body["githubRepo"] = github_repo
    assert paper(body).github_repo == expected


def test_a_project_page_that_is_a_web_address_is_kept() -> None:
    body = pi0()
    body["projectPage"] = "https://www.physicalintelligence.company/blog/pi0"
    assert paper(body).project_page == "https://www.physicalintelligence.company/blog/pi0"


def test_collection_upvotes_out_of_range() -> None:
    body = bonsai()
    body["upvotes"] = PAST_INT64
    parsed = validate_answer(CollectionBody, encode(body), BONSAI, BONSAI)
    record = repo_record("collection", BONSAI, Resolution("ok", body=parsed))
    assert (record.status, record.upvotes) == ("ok", None)
    assert (
        record.status_reason == f"field 'upvotes' left out: {PAST_INT64} is past the int64 maximum"
    )


def test_a_stale_record_names_both_its_failure_and_the_fields_left_out() -> None:
    body = bert()
    body["likes"] = -1
    parsed = validate(ModelBody, encode(body))
    record = repo_record("model", BERT, Resolution("stale", "HTTP 503", parsed, FETCHED))
    assert record.status_reason == "HTTP 503; field 'likes' left out: -1 is negative"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, None),
        (INT64_MAX, None),
        (INT64_MAX + 1, "9223372036854775808 is past the int64 maximum"),
        (-1, "-1 is negative"),
        (-(2**64), "-18446744073709551616 is negative"),
        (10**60, "1000000000000000000000000000000000000... is past the int64 maximum"),
    ],
)
def test_count_problem(value: int, problem: str | None) -> None:
    assert count_problem(value) == problem


# -- the identity: grammar, and the ID asked (or redirected to) -----------------------------
@pytest.mark.parametrize(
    ("body_id", "asked", "served", "problem"),
    [
        (BERT, BERT, BERT, None),
        ("Google-BERT/Bert-Base-Uncased", BERT, BERT, None),  # the Hub ignores case
        (BERT, "bert-base-uncased", BERT, None),  # redirected: a rename
        (BERT, "google-bert/BERT-BASE-UNCASED", None, None),
        ("../../../../etc/passwd", BERT, BERT, "field 'id': '../../../../etc/passwd' is not"),
        ("/etc/passwd", BERT, BERT, "field 'id': '/etc/passwd' is not a Hub repo ID"),
        ("https://evil.test/x", BERT, BERT, "is not a Hub repo ID"),
        ("org//name", BERT, BERT, "is not a Hub repo ID"),
        ("a/b/c", BERT, BERT, "is not a Hub repo ID"),
        ("", BERT, BERT, "is not a Hub repo ID"),
        ("evil/other-model", BERT, BERT, "is neither the ID asked ('google-bert/bert-base"),
        ("evil/other-model", "old/name", "new/name", "nor the one the Hub redirected to"),
    ],
)
def test_a_repo_answer_must_name_the_repo_asked(
    body_id: str, asked: str, served: str | None, problem: str | None
) -> None:
    body = encode({"id": body_id, "downloads": 1})
    if problem is None:
        assert validate_answer(ModelBody, body, asked, served).canonical_id() == body_id
        assert validate_answer(DatasetBody, body, asked, served).canonical_id() == body_id
    else:
        with pytest.raises(PermanentFailure) as raised:
            validate_answer(ModelBody, body, asked, served)
        assert raised.value.reason.startswith("invalid response: ")
        assert problem in raised.value.reason


@pytest.mark.parametrize(
    ("slug", "asked", "problem"),
    [
        (BONSAI, BONSAI, None),
        (BONSAI, "prism-ml/bonsai-2", None),  # the short share form
        (BONSAI, "Prism-ML/old-title-6aab292b9fa72a78652429df", None),  # retitled: same ID
        (BONSAI, "prism-ml/bonsai-2-0000000000000000000000aa", "is neither the ID asked"),
        (BONSAI, "other/bonsai-2", "is neither the ID asked"),
        ("prism-ml/bonsai-2", "prism-ml/bonsai-2", "is not a Hub collection ID"),
        ("../../etc/passwd", BONSAI, "is not a Hub collection ID"),
        ("/etc/passwd-6aab292b9fa72a78652429df", BONSAI, "is not a Hub collection ID"),
        ("https://evil.test/x-6aab292b9fa72a78652429df", BONSAI, "is not a Hub collection ID"),
    ],
)
def test_a_collection_answer_must_name_the_collection_asked(
    slug: str, asked: str, problem: str | None
) -> None:
    body = bonsai()
    body["slug"] = slug
    if problem is None:
        assert validate_answer(CollectionBody, encode(body), asked, asked).canonical_id() == slug
    else:
        with pytest.raises(PermanentFailure, match="field 'slug'") as raised:
            validate_answer(CollectionBody, encode(body), asked, asked)
        assert problem in raised.value.reason


@pytest.mark.parametrize(
    ("paper_id", "problem"),
    [
        (PI0, None),
        (f"{PI0}v2", None),
        ("2409.12191", "is neither the ID asked ('2410.24164')"),
        ("../../etc/passwd", "is not an arXiv ID"),
        ("", "is not an arXiv ID"),
    ],
)
def test_a_paper_page_must_be_the_paper_asked(paper_id: str, problem: str | None) -> None:
    body = pi0()
    body["id"] = paper_id
    if problem is None:
        assert validate_answer(PaperBody, encode(body), PI0, PI0).canonical_id() == PI0
    else:
        with pytest.raises(PermanentFailure, match="field 'id'") as raised:
            validate_answer(PaperBody, encode(body), PI0, PI0)
        assert problem in raised.value.reason


# -- the shape: a wrong type refuses the answer ---------------------------------------------
@pytest.mark.parametrize(
    ("body_type", "body", "reason"),
    [
        (ModelBody, b'{"id":"x/y","downloads":"many"}', "field 'downloads': Input should be"),
        (ModelBody, b'{"id":"x/y","downloads":1e30}', "field 'downloads'"),
        (ModelBody, b'{"id":"x/y","likes":true}', "field 'likes'"),
        (ModelBody, b'{"downloads":1}', "field 'id' is missing"),
        (ModelBody, b'{"id":"x/y"', "not JSON"),
        # Past what any JSON reader will turn into an integer: the body is unreadable.
        (ModelBody, b'{"id":"x/y","likes":1' + b"0" * 5000 + b"}", "not JSON"),
        (PaperBody, b'{"id":"2410.24164","linkedModels":[{"id":7}]}', "linkedModels.0.id"),
        (CollectionBody, b'{"slug":"a/b-6aab292b9fa72a78652429df"}', "field 'items' is missing"),
    ],
)
def test_a_body_of_the_wrong_shape_is_refused_naming_the_field(
    body_type: type[Body], body: bytes, reason: str
) -> None:
    with pytest.raises(PermanentFailure) as raised:
        validate(body_type, body)
    assert reason in raised.value.reason


# -- the grammar shared with documents ------------------------------------------------------
@pytest.mark.parametrize(
    ("repo_id", "sendable"),
    [
        (BERT, True),
        ("gpt2", True),
        ("../etc", False),
        ("org/..", False),
        ("org/.", False),
        ("org//name", False),
        ("/etc/passwd", False),
        ("https://x.test/a", False),
        ("", False),
    ],
)
def test_is_sendable_repo_id(repo_id: str, sendable: bool) -> None:
    assert is_sendable_repo_id(repo_id) is sendable


@pytest.mark.parametrize(
    ("collection_id", "canonical"),
    [
        (BONSAI, True),
        ("prism-ml/bonsai-2", False),  # the short share form is asked, never answered
        ("prism-ml/bonsai-2-6aab292b9fa72a78652429df/x", False),
        ("prism-ml/bonsai-2-6aab292b9fa72a78652429df?x=1", False),
        ("../bonsai-2-6aab292b9fa72a78652429df", False),
    ],
)
def test_is_canonical_collection_id(collection_id: str, canonical: bool) -> None:
    assert is_canonical_collection_id(collection_id) is canonical


def test_an_error_resolution_makes_a_record_without_values() -> None:
    repo_type: RepoType = "model"
    record = repo_record(repo_type, BERT, Resolution("error", "HTTP 503"))
    assert (record.status, record.status_reason, record.downloads) == ("error", "HTTP 503", None)
    assert paper_record(PI0, Resolution("error", "HTTP 503")).linked_models == ()
    assert LinkedModel("a/b").params_total is None


@pytest.mark.parametrize(
    ("item", "kept"),
    [
        ({"type": "model", "id": "prism-ml/Ternary-Bonsai-2-27B-gguf"}, True),
        ({"type": "paper", "id": "2410.24164"}, True),
        ({"type": "collection", "id": BONSAI}, True),
        ({"type": "model", "id": "../../../../etc/passwd"}, False),
        ({"type": "dataset", "id": "/etc/passwd"}, False),
        ({"type": "space", "id": "https://evil.example/api/models/x"}, False),
        ({"type": "paper", "id": "../../etc/passwd"}, False),
        ({"type": "collection", "id": "../x-6aab292b9fa72a78652429df"}, False),
        ({"type": "bucket", "id": "../../etc/passwd"}, False),
    ],
)
def test_collection_items_whose_id_their_type_does_not_allow_are_left_out(
    item: Json, kept: bool
) -> None:
    body = bonsai()
    body["items"] = [body["items"][0], item]
    parsed = validate_answer(CollectionBody, encode(body), BONSAI, BONSAI)
    record = repo_record("collection", BONSAI, Resolution("ok", body=parsed))
    assert record.status == "ok"
    assert len(record.items) == (2 if kept else 1)
    if kept:
        assert record.status_reason is None
    else:
        assert (record.status_reason or "").startswith("field 'items.1.id' left out: ")


def test_the_sandbox_collections_are_clean() -> None:
    for collection in load_sample("hub_repos.json")["collections"]:
        parsed = validate_answer(
            CollectionBody, encode(collection), collection["slug"], collection["slug"]
        )
        record = repo_record("collection", collection["slug"], Resolution("ok", body=parsed))
        assert record.status_reason is None and len(record.items) == len(collection["items"])


# -- logical sizes and lineage -----------------------------------------------------------------
GRM = "OrionLLM/GRM-2.6-Opus"


def grm() -> Json:
    return sample("hf_model_info_OrionLLM_GRM-2.6-Opus_image-text-to-text.json")


def test_lineage_comes_from_the_card_first_then_the_tags() -> None:
    # The real GRM body: a merge of two bases, both in cardData and in the tags.
    record = model_record(grm(), GRM)
    assert (record.base_model, record.base_model_relation) == (
        "rico03/Qwen3.6-27B-Claude-Opus-Reasoning-Distilled",
        "merge",
    )
    assert record.status_reason is None


@pytest.mark.parametrize(
    ("change", "base", "relation", "problem"),
    [
        # No card: the first plain `base_model:` tag, its relation from its relation tag.
        (edit("cardData", None), "OrionLLM/GRM-2.6-Plus", "merge", None),
        (edit("cardData.base_model", "a/b"), "a/b", "merge", None),
        # A relation the Hub does not name is not kept; the tags have none for this base.
        (
            edit("cardData.base_model_relation", "cousin"),
            "rico03/Qwen3.6-27B-Claude-Opus-Reasoning-Distilled",
            "merge",
            None,
        ),
        (
            edit("tags", ["base_model:quantized:x/y", "base_model:x/y"]),
            "rico03/Qwen3.6-27B-Claude-Opus-Reasoning-Distilled",
            "merge",
            None,
        ),
        (edit("cardData", {"base_model": "x/y"}), "x/y", None, None),
        (
            edit("cardData.base_model", ["../../etc/passwd"]),
            None,
            None,
            "field 'cardData.base_model' left out: '../../etc/passwd' is not a Hub repo ID",
        ),
        (
            edit("cardData.base_model", {"id": "a/b"}),
            None,
            None,
            "field 'cardData.base_model' left out: {'id': 'a/b'} is not a Hub repo ID",
        ),
    ],
)
def test_lineage_cases(
    change: Edit, base: str | None, relation: str | None, problem: str | None
) -> None:
    body = grm()
    change(body)
    record = model_record(body, GRM)
    assert (record.status, record.base_model, record.base_model_relation) == ("ok", base, relation)
    assert record.status_reason == problem


def test_lineage_from_tags_alone_with_their_relation() -> None:
    body = grm()
    body["cardData"] = None
    body["tags"] = ["base_model:Qwen/Qwen2-VL-7B", "base_model:finetune:qwen/qwen2-vl-7b"]
    record = model_record(body, GRM)
    assert (record.base_model, record.base_model_relation) == ("Qwen/Qwen2-VL-7B", "finetune")


NVFP4_CONFIG = {
    "quant_method": "compressed-tensors",
    "format": "nvfp4-pack-quantized",
    "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "float", "group_size": 16}}},
}


@pytest.mark.parametrize(
    ("config", "parameters", "total", "source"),
    [
        (
            {"quantization_config": NVFP4_CONFIG},
            {"U8": 336_011_628_544, "F8_E4M3": 42_001_453_568, "BF16": 3_245_998_656},
            675_269_255_744,
            "safetensors_unpacked:compressed-tensors/nvfp4-pack-quantized",
        ),
        # No config (an answer without `expand[]=config`), or one without quantization:
        # the stored count, named as such.
        (None, {"U8": 336_011_628_544, "F8_E4M3": 42_001_453_568}, 378_013_082_112, "safetensors"),
        ({"model_type": "x"}, {"U8": 10, "BF16": 5}, 15, "safetensors"),
        # A config whose totals do not fit: stored, not a guess.
        ({"quantization_config": NVFP4_CONFIG}, {"U8": 100, "BF16": 5}, 105, "safetensors"),
        ({"quantization_config": "gptq"}, {"I32": 100}, 100, "safetensors"),
    ],
)
def test_params_total_is_logical_and_params_stored_as_stored(
    config: Json | None, parameters: dict[str, int], total: int, source: str
) -> None:
    body = bert()
    body["config"] = config
    body["safetensors"] = {"parameters": parameters, "total": sum(parameters.values())}
    record = model_record(body)
    assert (record.params_total, record.params_source) == (total, source)
    assert record.params_stored == sum(parameters.values())
    assert record.params_by_dtype == tuple(parameters.items())


def test_gguf_and_name_counts_are_logical_already() -> None:
    body = bert()
    del body["safetensors"]
    body["gguf"] = {"total": 7_000_000_000, "architecture": "llama"}
    body["config"] = {"quantization_config": NVFP4_CONFIG}
    record = model_record(body)
    assert (record.params_total, record.params_stored, record.params_source) == (
        7_000_000_000,
        7_000_000_000,
        "gguf",
    )


def test_the_sandbox_sample_has_packed_models_of_each_format() -> None:
    methods = {
        str(model.get("config", {}).get("quantization_config", {}).get("quant_method"))
        for model in load_sample("hub_repos.json")["models"]
    }
    assert {"compressed-tensors", "gptq", "awq", "bitsandbytes"} <= methods
