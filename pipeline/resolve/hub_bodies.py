"""Hub JSON bodies validated into records (pure: no network, no disk)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainValidator, ValidationError

from pipeline.links.identify import identify, parse_arxiv_id
from pipeline.records import (
    _UNITS,
    CollectionItem,
    HubRepoRecord,
    LinkedModel,
    PaperPageRecord,
    RepoType,
    Status,
)
from pipeline.resolve.common import (
    PermanentFailure,
)

_UNIT_SCALE = {unit.lower(): scale for unit, scale in _UNITS if unit != "K"}


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
    """
    name = repo_id.rsplit("/", 1)[-1]
    sizes = []
    for match in _SIZE_IN_NAME.finditer(name):
        value = Decimal(match["number"]) * _UNIT_SCALE[match["unit"].lower()]
        if match["experts"]:
            value *= int(match["experts"])
        sizes.append(int(value))
    return max(sizes) if sizes else None


# -- response bodies (validated; only what the records keep) -----------------------------
Count = Annotated[int, Field(ge=0)]


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


class _Body(BaseModel):
    # Strict, validated from the JSON text: "many" is not a count, 1 is not a boolean, and a
    # date must be an ISO 8601 string with its time zone. Unknown keys are the Hub's to add.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    def canonical_id(self) -> str:
        raise NotImplementedError


class _CardData(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    license: LicenseValue = None
    title: str | None = None


class _RepoBody(_Body):
    id: str
    author: str | None = None
    createdAt: AwareDatetime | None = None
    lastModified: AwareDatetime | None = None
    private: bool | None = None
    gated: Gated = None
    downloads: Count | None = None
    likes: Count | None = None
    tags: list[str] = []
    cardData: _CardData | None = None

    def canonical_id(self) -> str:
        return self.id


class _Safetensors(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    parameters: dict[str, Count] = {}
    total: Count | None = None


class _Gguf(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    total: Count | None = None


class _ModelBody(_RepoBody):
    pipeline_tag: str | None = None
    library_name: str | None = None
    safetensors: _Safetensors | None = None
    gguf: _Gguf | None = None


class _DatasetBody(_RepoBody):
    pass


class _SpaceBody(_RepoBody):
    sdk: str | None = None


class _ItemBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    type: str
    id: str


class _OwnerBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    name: str | None = None


class _CollectionBody(_Body):
    slug: str
    title: str | None = None
    lastUpdated: AwareDatetime | None = None
    private: bool | None = None
    upvotes: Count | None = None
    owner: _OwnerBody | None = None
    items: list[_ItemBody]

    def canonical_id(self) -> str:
        return self.slug


class _LinkedModelBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)
    id: str
    numParameters: Count | None = None
    pipeline_tag: str | None = None
    downloads: Count | None = None
    likes: Count | None = None


class _PaperBody(_Body):
    id: str
    upvotes: Count | None = None
    githubRepo: str | None = None
    githubStars: Count | None = None
    projectPage: str | None = None
    linkedModels: list[_LinkedModelBody] = []
    numTotalModels: Count | None = None

    def canonical_id(self) -> str:
        return self.id


_B = TypeVar("_B", bound=_Body)


@dataclass(frozen=True)
class _Resolution(Generic[_B]):
    status: Status
    reason: str | None = None
    body: _B | None = None
    fetched_at: datetime | None = None


def _validate(body_type: type[_B], body: bytes) -> _B:
    try:
        return body_type.model_validate_json(body)
    except ValidationError as exc:
        raise PermanentFailure(_describe_invalid(exc)) from None


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


def _license(body: _RepoBody) -> str | None:
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
    body: _ModelBody,
) -> tuple[int | None, tuple[tuple[str, int], ...], Literal["safetensors", "gguf", "name"] | None]:
    weights = body.safetensors
    if weights is not None:
        total = weights.total if weights.total is not None else sum(weights.parameters.values())
        if total > 0:
            return total, tuple(weights.parameters.items()), "safetensors"
    if body.gguf is not None and body.gguf.total:
        return body.gguf.total, (), "gguf"
    from_name = params_from_name(body.id)
    if from_name is not None:
        return from_name, (), "name"
    return None, (), None


def _gated(value: bool | str | None) -> str | None:
    if value is None or value is False:
        return None
    return "true" if value is True else str(value)


def _repo_record(
    repo_type: RepoType, requested_id: str, resolution: _Resolution[Any]
) -> HubRepoRecord:
    body = resolution.body
    base = HubRepoRecord(
        repo_type=repo_type,
        requested_id=requested_id,
        repo_id=requested_id,
        status=resolution.status,
        status_reason=resolution.reason,
        data_fetched_at=resolution.fetched_at,
    )
    if isinstance(body, _CollectionBody):
        return replace(
            base,
            repo_id=body.slug,
            author=body.owner.name if body.owner is not None else None,
            last_modified=body.lastUpdated,
            private=body.private,
            title=body.title,
            items=tuple(CollectionItem(item.type, item.id) for item in body.items),
            upvotes=body.upvotes,
        )
    if not isinstance(body, _RepoBody):
        return base
    record = replace(
        base,
        repo_id=body.id,
        author=body.author,
        created_at=body.createdAt,
        last_modified=body.lastModified,
        private=body.private,
        gated=_gated(body.gated),
        downloads=body.downloads,
        likes=body.likes,
        license=_license(body),
        tags=tuple(body.tags),
        arxiv_ids=_arxiv_ids(body.tags),
    )
    if isinstance(body, _ModelBody):
        total, by_dtype, source = _params(body)
        record = replace(
            record,
            pipeline_tag=body.pipeline_tag,
            library_name=body.library_name,
            params_total=total,
            params_by_dtype=by_dtype,
            params_source=source,
        )
    elif isinstance(body, _SpaceBody):
        title = body.cardData.title if body.cardData is not None else None
        record = replace(record, sdk=body.sdk, title=title)
    return record


def _github_repo(url: str | None) -> str | None:
    if not url:
        return None
    identity = identify(url)
    if identity.kind == "github_repo":
        return identity.entity_id
    if identity.kind == "github_asset":
        return identity.asset_repo
    return None


def _paper_record(arxiv_id: str, resolution: _Resolution[_PaperBody]) -> PaperPageRecord:
    record = PaperPageRecord(
        arxiv_id=arxiv_id,
        status=resolution.status,
        status_reason=resolution.reason,
        data_fetched_at=resolution.fetched_at,
    )
    body = resolution.body
    if body is None:
        return record
    return replace(
        record,
        upvotes=body.upvotes,
        github_repo=_github_repo(body.githubRepo),
        github_stars=body.githubStars,
        project_page=body.projectPage,
        linked_models=tuple(
            LinkedModel(
                repo_id=model.id,
                params_total=model.numParameters,
                pipeline_tag=model.pipeline_tag,
                downloads=model.downloads,
                likes=model.likes,
            )
            for model in body.linkedModels
        ),
        num_total_models=body.numTotalModels,
    )
