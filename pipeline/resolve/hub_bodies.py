"""Hub JSON bodies validated into records (pure: no network, no disk).

An answer is good only when every value in it passes these rules, fresh or read back from
the raw store (stored answers are re-read by tonight's rules, never trusted as they were):

- the shape: each kept field has the type the Hub documents (`validate`). A wrong type or
  a missing identity key makes the whole answer unusable, and the reason names the field;
- the identity: the answer's canonical ID (`id`, a collection's `slug`) passes the same
  grammar as IDs in documents and is the ID asked or the one the Hub redirected to,
  compared as the Hub compares repo names, case-insensitively (`validate_answer`).
  Otherwise a server, or a mirror, could publish any key it likes;
- the values: counts fit int64 and are not negative; a count outside that range, a
  collection item or a linked model whose ID its type does not allow, a project page that
  is no http(s) URL is that field's problem only. It is left out (null, or not listed) and
  named in the record's `status_reason`; the entity keeps its row and its status
  (`repo_record`, `paper_record`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, PlainValidator, ValidationError

from pipeline.links.identify import (
    identify,
    is_valid_hub_repo_id,
    parse_arxiv_id,
    split_collection_id,
)
from pipeline.records import (
    INT64_MAX,
    UNITS,
    CollectionItem,
    HubRepoRecord,
    LinkedModel,
    PaperPageRecord,
    RepoType,
    Status,
)
from pipeline.resolve.common import PermanentFailure
from pipeline.resolve.hub_params import logical_params, packing_of

_UNIT_SCALE = {unit.lower(): scale for unit, scale in UNITS if unit != "K"}


# A size written in a repo name: "72B", "7.6B", "968M", "1.5b", "8x7B" (experts x size).
# It must stand alone between separators, so that "Qwen2.5", "v1.5", "A3B" (active
# parameters) and "4bit" are not read as sizes. "K" is left out: "128k" is a context length.
_SIZE_IN_NAME = re.compile(
    r"(?<![A-Za-z0-9.])(?:(?P<experts>\d+)x)?(?P<number>\d+(?:\.\d+)?)(?P<unit>[bmt])(?![A-Za-z0-9])",
    re.IGNORECASE,
)


def params_from_name(repo_id: str) -> int | None:
    """The parameter count a repo name states ("Qwen2-VL-72B" -> 72e9), if it states one.

    Only the name after the namespace is read. When several sizes appear
    ("Qwen2.5-7B-Instruct-1M"), the largest is the model's; "1M" there is a context length.
    A size past int64 ("100000000000000000000B") is no size a table can hold: not one.
    """
    name = repo_id.rsplit("/", 1)[-1]
    sizes = []
    for match in _SIZE_IN_NAME.finditer(name):
        value = Decimal(match["number"]) * _UNIT_SCALE[match["unit"].lower()]
        if match["experts"]:
            value *= int(match["experts"])
        if value <= INT64_MAX:
            sizes.append(int(value))
    return max(sizes) if sizes else None


def is_sendable_repo_id(repo_id: str) -> bool:
    """Whether a repo ID may become URL path segments, or a key of the tables: valid by the
    Hub's rules (as IDs in documents are checked), and (whatever those rules say) no empty,
    `.` or `..` segment, which URL normalisation would act on."""
    if any(segment in ("", ".", "..") for segment in repo_id.split("/")):
        return False
    return is_valid_hub_repo_id(repo_id)


def is_canonical_collection_id(collection_id: str) -> bool:
    """Whether a collection ID is the full `namespace/slug-<24 hex id>` form the Hub answers
    with, valid by the same rules as a collection link in a document."""
    identity = identify(f"https://huggingface.co/collections/{collection_id}")
    return (
        identity.kind == "hf_collection"
        and identity.valid
        and identity.entity_id == collection_id
        and split_collection_id(collection_id)[2] is not None
    )


# -- response bodies (validated; only what the records keep) -----------------------------
Count = int | None
"""A count as the Hub sends it: any JSON integer. Its range is checked when the record is
made (`count_problem`), so that one absurd value costs that field, not the whole answer."""


def _gated_value(value: object) -> object:
    if value is None or isinstance(value, bool) or value in ("auto", "manual"):
        return value
    raise ValueError("expected false, 'auto' or 'manual'")


def _license_value(value: object) -> object:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ValueError("expected a licence identifier or a list of them")


# Hand-written checks where the Hub allows two shapes: one clear message, not one per shape.
Gated = Annotated[bool | str | None, PlainValidator(_gated_value)]


LicenseValue = Annotated[str | list[str] | None, PlainValidator(_license_value)]


class Body(BaseModel):
    """One Hub answer, as far as a record keeps it."""

    # Strict, validated from the JSON text: "many" is not a count, 1 is not a boolean, and a
    # date must be an ISO 8601 string with its time zone. Unknown keys are the Hub's to add.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    def canonical_id(self) -> str:
        """The ID the Hub gives the entity (after renames)."""
        raise NotImplementedError

    def identity_problem(self, asked: str, served: str | None) -> str | None:
        """Why the answer's canonical ID cannot be the entity's: not a valid ID, or neither
        the ID `asked` nor the one `served` (the Hub redirected to); None when it can."""
        raise NotImplementedError


class _CardData(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    license: LicenseValue = None
    title: str | None = None
    # README front matter, free-form: a bad value is that field's problem (`_lineage`),
    # not the whole answer's.
    base_model: Any = None
    base_model_relation: Any = None


class RepoBody(Body):
    id: str
    author: str | None = None
    createdAt: AwareDatetime | None = None
    lastModified: AwareDatetime | None = None
    private: bool | None = None
    gated: Gated = None
    downloads: Count = None
    likes: Count = None
    tags: list[str] = []
    cardData: _CardData | None = None

    def canonical_id(self) -> str:
        return self.id

    def identity_problem(self, asked: str, served: str | None) -> str | None:
        if not is_sendable_repo_id(self.id):
            return f"field 'id': {_short(self.id)} is not a Hub repo ID"
        # Repo names are case-insensitive on the Hub: it answers `qwen/qwen2-vl-72b` as
        # `Qwen/Qwen2-VL-72B` (or redirects to it).
        if self.id.lower() not in {name.lower() for name in (asked, served) if name}:
            return _not_asked("id", self.id, asked)
        return None


class _Safetensors(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    parameters: dict[str, int] = {}
    total: Count = None


class _Gguf(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    total: Count = None


class _Config(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    # As written in the repo's config.json: read by `hub_params.packing_of`, which
    # accepts only the shapes it knows.
    quantization_config: Any = None


class ModelBody(RepoBody):
    pipeline_tag: str | None = None
    library_name: str | None = None
    safetensors: _Safetensors | None = None
    gguf: _Gguf | None = None
    config: _Config | None = None


class DatasetBody(RepoBody):
    pass


class SpaceBody(RepoBody):
    sdk: str | None = None


class _ItemBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    type: str
    id: str


class _OwnerBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    name: str | None = None


class CollectionBody(Body):
    slug: str
    title: str | None = None
    lastUpdated: AwareDatetime | None = None
    private: bool | None = None
    upvotes: Count = None
    owner: _OwnerBody | None = None
    items: list[_ItemBody]

    def canonical_id(self) -> str:
        return self.slug

    def identity_problem(self, asked: str, served: str | None) -> str | None:
        if not is_canonical_collection_id(self.slug):
            return f"field 'slug': {_short(self.slug)} is not a Hub collection ID"
        if not any(_same_collection(self.slug, name) for name in (asked, served) if name):
            return _not_asked("slug", self.slug, asked)
        return None


class _LinkedModelBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    id: str
    numParameters: Count = None
    pipeline_tag: str | None = None
    downloads: Count = None
    likes: Count = None


class PaperBody(Body):
    id: str
    upvotes: Count = None
    githubRepo: str | None = None
    githubStars: Count = None
    projectPage: str | None = None
    linkedModels: list[_LinkedModelBody] = []
    numTotalModels: Count = None

    def canonical_id(self) -> str:
        parsed = parse_arxiv_id(self.id)
        return self.id if parsed is None else parsed[0]

    def identity_problem(self, asked: str, served: str | None) -> str | None:
        parsed = parse_arxiv_id(self.id)
        if parsed is None:
            return f"field 'id': {_short(self.id)} is not an arXiv ID"
        if parsed[0] not in (asked, served):
            return _not_asked("id", self.id, asked)
        return None


BodyT = TypeVar("BodyT", bound=Body)


def _not_asked(field: str, value: str, asked: str) -> str:
    return (
        f"field '{field}': {_short(value)} is neither the ID asked ({asked!r})"
        " nor the one the Hub redirected to"
    )


def _same_collection(canonical: str, asked: str) -> bool:
    """Whether the collection `asked` (in full, or the short `namespace/slug` of a share
    URL) is the `canonical` one: same namespace, and the same object ID (a retitled
    collection changes its slug, never its ID) or, for the short form, the same slug."""
    namespace, slug, object_id = split_collection_id(canonical)
    asked_namespace, asked_slug, asked_object_id = split_collection_id(asked)
    if namespace.lower() != asked_namespace.lower():
        return False
    if asked_object_id is not None:
        return asked_object_id == object_id
    return asked_slug.lower() == slug.lower()


@dataclass(frozen=True)
class Resolution(Generic[BodyT]):
    """How one lookup ended: its status, why, and the body whose values the record carries."""

    status: Status
    reason: str | None = None
    body: BodyT | None = None
    fetched_at: datetime | None = None


def validate(body_type: type[BodyT], body: bytes) -> BodyT:
    """The body's shape, or `PermanentFailure` naming the fields that break it."""
    try:
        return body_type.model_validate_json(body)
    except ValidationError as exc:
        raise PermanentFailure(_describe_invalid(exc)) from None


def validate_answer(body_type: type[BodyT], body: bytes, asked: str, served: str | None) -> BodyT:
    """A body that may be stored, and used, as a good answer about `asked`: its shape, and
    its canonical ID (`served`: the ID in the URL that answered, after redirects)."""
    parsed = validate(body_type, body)
    problem = parsed.identity_problem(asked, served)
    if problem is not None:
        raise PermanentFailure(f"invalid response: {problem}")
    return parsed


def _describe_invalid(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    problems = []
    for error in errors[:3]:
        where = ".".join(str(part) for part in error["loc"]) or "(body)"
        if error["type"] == "missing":
            problems.append(f"field '{where}' is missing")
        elif error["type"] == "json_invalid":
            problems.append(f"not JSON: {error['msg']}")
        else:
            problems.append(f"field '{where}': {error['msg']} (got {_short(error.get('input'))})")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid response: " + "; ".join(problems) + more


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def count_problem(value: int) -> str | None:
    """Why an integer is no count a table can hold (int64, not negative); None if it is."""
    if value < 0:
        return f"{_short(value)} is negative"
    if value > INT64_MAX:
        return f"{_short(value)} is past the int64 maximum"
    return None


class _Fields:
    """The values a record leaves out, and why: each is that field's problem alone."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def refuse(self, where: str, problem: str) -> None:
        self.problems.append(f"field '{where}' left out: {problem}")

    def count(self, value: int | None, where: str) -> int | None:
        if value is None:
            return None
        problem = count_problem(value)
        if problem is not None:
            self.refuse(where, problem)
            return None
        return value

    def reason(self, reason: str | None) -> str | None:
        """The record's reason: its lookup's, then the fields left out."""
        parts = [part for part in (reason, *self.problems) if part]
        return "; ".join(parts) if parts else None


def _license(body: RepoBody) -> str | None:
    card = body.cardData.license if body.cardData is not None else None
    if isinstance(card, str) and card:
        return card
    if isinstance(card, list) and card:
        return ", ".join(card)
    for tag in body.tags:
        if tag.startswith("license:"):
            return tag.removeprefix("license:")
    return None


def _arxiv_ids(tags: Iterable[str]) -> tuple[str, ...]:
    ids: dict[str, None] = {}
    for tag in tags:
        if tag.startswith("arxiv:"):
            parsed = parse_arxiv_id(tag.removeprefix("arxiv:"))
            if parsed is not None:
                ids[parsed[0]] = None
    return tuple(ids)


def _params(
    body: ModelBody, fields: _Fields
) -> tuple[int | None, tuple[tuple[str, int], ...], str | None]:
    """Safetensors' total (or the sum of its dtypes, which is what the total is), else
    GGUF's, else the name's. A count left out is as if absent; a sum with a dtype left out
    is unknown, not smaller."""
    weights = body.safetensors
    if weights is not None:
        by_dtype: dict[str, int] = {}
        for dtype, value in weights.parameters.items():
            kept = fields.count(value, f"safetensors.parameters.{dtype}")
            if kept is not None:
                by_dtype[dtype] = kept
        total = fields.count(weights.total, "safetensors.total")
        if total is None and len(by_dtype) == len(weights.parameters):
            summed = sum(by_dtype.values())
            problem = count_problem(summed)
            if problem is None:
                total = summed
            else:
                fields.refuse("safetensors.parameters", f"their sum {problem}")
        if total is not None and total > 0:
            return total, tuple(by_dtype.items()), "safetensors"
    gguf_total = fields.count(body.gguf.total, "gguf.total") if body.gguf is not None else None
    if gguf_total:
        return gguf_total, (), "gguf"
    from_name = params_from_name(body.id)
    if from_name is not None:
        return from_name, (), "name"
    return None, (), None


def _logical_params(
    body: ModelBody,
    stored: int | None,
    by_dtype: tuple[tuple[str, int], ...],
    source: str | None,
) -> tuple[int | None, str | None]:
    """The logical count: safetensors' stored one unpacked as the config's
    `quantization_config` says (`hub_params`), when it does and the totals fit; GGUF
    totals and sizes in names already count weights, not bytes."""
    if source != "safetensors" or body.config is None:
        return stored, source
    packing = packing_of(body.config.quantization_config)
    if packing is None:
        return stored, source
    logical = logical_params(dict(by_dtype), packing)
    if logical is None or count_problem(logical) is not None:
        return stored, source
    return logical, f"safetensors_unpacked:{packing.name}"


BASE_MODEL_RELATIONS = ("adapter", "finetune", "merge", "quantized")
"""The relations the Hub's `base_model:<relation>:<id>` tags name."""


def _lineage(body: ModelBody, fields: _Fields) -> tuple[str | None, str | None]:
    """The model's base (the first of several, as the card lists them; a merge has
    several) and its relation to it: the card's `base_model` and `base_model_relation`
    first, else the Hub's `base_model:` tags. An ID that is no Hub repo ID is left out."""
    card = body.cardData
    bases: list[str] = []
    written = card.base_model if card is not None else None
    if written is not None:
        values = written if isinstance(written, list) else [written]
        for value in values:
            if isinstance(value, str) and is_sendable_repo_id(value):
                bases.append(value)
            else:
                fields.refuse("cardData.base_model", f"{_short(value)} is not a Hub repo ID")
                return None, None
    related: dict[str, str] = {}
    for tag in body.tags:
        parts = tag.split(":")
        if parts[0] != "base_model":
            continue
        if len(parts) == 2 and is_sendable_repo_id(parts[1]):
            bases.append(parts[1])
        elif len(parts) == 3 and parts[1] in BASE_MODEL_RELATIONS:
            related.setdefault(parts[2].lower(), parts[1])
    if not bases:
        return None, None
    base = bases[0]
    relation = card.base_model_relation if card is not None else None
    if relation not in BASE_MODEL_RELATIONS:
        relation = related.get(base.lower())
    return base, relation if isinstance(relation, str) else None


def _gated(value: bool | str | None) -> str | None:
    if value is None or value is False:
        return None
    return "true" if value is True else str(value)


def repo_record(
    repo_type: RepoType, requested_id: str, resolution: Resolution[Any]
) -> HubRepoRecord:
    """The record of one repo lookup, with the values of its body when it has one."""
    body = resolution.body
    fields = _Fields()
    base = HubRepoRecord(
        repo_type=repo_type,
        requested_id=requested_id,
        repo_id=requested_id,
        status=resolution.status,
        status_reason=resolution.reason,
        data_fetched_at=resolution.fetched_at,
    )
    if isinstance(body, CollectionBody):
        record = replace(
            base,
            repo_id=body.slug,
            author=body.owner.name if body.owner is not None else None,
            last_modified=body.lastUpdated,
            private=body.private,
            title=body.title,
            items=_collection_items(body, fields),
            upvotes=fields.count(body.upvotes, "upvotes"),
        )
        return replace(record, status_reason=fields.reason(resolution.reason))
    if not isinstance(body, RepoBody):
        return base
    record = replace(
        base,
        repo_id=body.id,
        author=body.author,
        created_at=body.createdAt,
        last_modified=body.lastModified,
        private=body.private,
        gated=_gated(body.gated),
        downloads=fields.count(body.downloads, "downloads"),
        likes=fields.count(body.likes, "likes"),
        license=_license(body),
        tags=tuple(body.tags),
        arxiv_ids=_arxiv_ids(body.tags),
    )
    if isinstance(body, ModelBody):
        stored, by_dtype, source = _params(body, fields)
        total, source = _logical_params(body, stored, by_dtype, source)
        base_model, relation = _lineage(body, fields)
        record = replace(
            record,
            pipeline_tag=body.pipeline_tag,
            library_name=body.library_name,
            params_total=total,
            params_stored=stored,
            params_by_dtype=by_dtype,
            params_source=source,
            base_model=base_model,
            base_model_relation=relation,
        )
    elif isinstance(body, SpaceBody):
        title = body.cardData.title if body.cardData is not None else None
        record = replace(record, sdk=body.sdk, title=title)
    return replace(record, status_reason=fields.reason(resolution.reason))


def _item_id_problem(item_type: str, item_id: str) -> str | None:
    """Why a collection item's ID is none its type allows (the items are looked up in
    turn, and become keys of the tables)."""
    if item_type == "paper":
        return None if parse_arxiv_id(item_id) is not None else "is not an arXiv ID"
    if item_type == "collection":
        valid = is_canonical_collection_id(item_id)
        return None if valid else "is not a Hub collection ID"
    # Models, datasets, spaces, and types the Hub may add (buckets): repo IDs.
    return None if is_sendable_repo_id(item_id) else "is not a Hub repo ID"


def _collection_items(body: CollectionBody, fields: _Fields) -> tuple[CollectionItem, ...]:
    items = []
    for index, item in enumerate(body.items):
        problem = _item_id_problem(item.type, item.id)
        if problem is None:
            items.append(CollectionItem(item.type, item.id))
        else:
            fields.refuse(f"items.{index}.id", f"{_short(item.id)} {problem}")
    return tuple(items)


def _github_repo(url: str | None) -> str | None:
    if not url:
        return None
    identity = identify(url)
    if not identity.valid:  # a hostile page's `../../etc/passwd` is no repo
        return None
    if identity.kind == "github_repo":
        return identity.entity_id
    if identity.kind == "github_asset":
        return identity.asset_repo
    return None


def _web_page(url: str | None, where: str, fields: _Fields) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return url
    fields.refuse(where, f"{_short(url)} is not an http(s) URL")
    return None


def _linked_models(body: PaperBody, fields: _Fields) -> tuple[LinkedModel, ...]:
    models = []
    for index, model in enumerate(body.linkedModels):
        where = f"linkedModels.{index}"
        if not is_sendable_repo_id(model.id):
            fields.refuse(f"{where}.id", f"{_short(model.id)} is not a Hub repo ID")
            continue
        models.append(
            LinkedModel(
                repo_id=model.id,
                params_total=fields.count(model.numParameters, f"{where}.numParameters"),
                pipeline_tag=model.pipeline_tag,
                downloads=fields.count(model.downloads, f"{where}.downloads"),
                likes=fields.count(model.likes, f"{where}.likes"),
            )
        )
    return tuple(models)


def paper_record(arxiv_id: str, resolution: Resolution[PaperBody]) -> PaperPageRecord:
    """The record of one paper page lookup, with the values of its body when it has one."""
    record = PaperPageRecord(
        arxiv_id=arxiv_id,
        status=resolution.status,
        status_reason=resolution.reason,
        data_fetched_at=resolution.fetched_at,
    )
    body = resolution.body
    if body is None:
        return record
    fields = _Fields()
    record = replace(
        record,
        upvotes=fields.count(body.upvotes, "upvotes"),
        github_repo=_github_repo(body.githubRepo),
        github_stars=fields.count(body.githubStars, "githubStars"),
        project_page=_web_page(body.projectPage, "projectPage", fields),
        linked_models=_linked_models(body, fields),
        num_total_models=fields.count(body.numTotalModels, "numTotalModels"),
    )
    return replace(record, status_reason=fields.reason(resolution.reason))
