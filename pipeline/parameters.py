"""The parameters of a run, as one validated model.

Prefect renders this model as the form people fill in when they start a run from the
UI (descriptions included); the CLI and the nightly schedule build the same model, so
all three ways of starting a run are validated by one definition.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pipeline.config import DEFAULT_OUT_DIR, DEFAULT_RAW_DIR, DEFAULT_SEEDS_DIR, RefreshPolicy

Resolver = Literal["arxiv", "arxiv_titles", "hub", "paper_pages", "github_repos"]
ALL_RESOLVERS: tuple[Resolver, ...] = (
    "arxiv",
    "arxiv_titles",
    "hub",
    "paper_pages",
    "github_repos",
)

SANDBOX_RAW_DIR = "raw/sandbox"
SANDBOX_OUT_DIR = "enriched/sandbox"


class RunParameters(BaseModel):
    """What one run reads, asks and writes."""

    model_config = ConfigDict(extra="forbid")

    documents: list[str] = Field(
        default_factory=lambda: [DEFAULT_SEEDS_DIR.as_posix()],
        min_length=1,
        description=(
            "Markdown documents or folders to read (relative to the working directory), or "
            "files on GitHub: github:OWNER/REPO/PATH[@REF] or "
            "https://github.com/OWNER/REPO/blob/REF/PATH."
        ),
    )
    sources: str | None = Field(
        default=None,
        description=(
            "A sources file (TOML, e.g. sources.toml) listing the reading lists with their "
            "names; when given, its lists are read instead of `documents`."
        ),
    )
    backfill: int = Field(
        default=0,
        ge=0,
        le=1000,
        description=(
            "Versions of each GitHub document's history to read as well, so that "
            "first_listed says from which commit each entry is listed (0: none)."
        ),
    )
    out_dir: str | None = Field(
        default=None,
        description=(
            "Snapshot root: a folder, or an object-store URL such as s3://bucket/prefix "
            "(credentials from the store's environment: AWS_*, AWS_ENDPOINT_URL). Default: "
            "enriched/ (enriched/sandbox/ for sandbox runs, so that sample data never mixes "
            "with real snapshots)."
        ),
    )
    raw_dir: str | None = Field(
        default=None,
        description=(
            "Raw-response store: a folder, or an object-store URL such as "
            "s3://bucket/raw (shared by every worker that uses it). Default: raw/ "
            "(raw/sandbox/ for sandbox runs)."
        ),
    )
    refresh: RefreshPolicy = Field(
        default=RefreshPolicy.TTL,
        description=(
            "ttl: ask only about entities whose stored answer has expired; "
            "refresh: ask about everything again; offline: ask nothing, answer from the raw store."
        ),
    )
    resolvers: list[Resolver] = Field(
        default_factory=lambda: list(ALL_RESOLVERS),
        description=(
            "Which lookups to run: arxiv (papers by ID), arxiv_titles (papers by link text), "
            "hub (Hugging Face repos and collections), paper_pages (HF paper pages and the "
            "models citing each paper), github_repos (code repositories on GitHub). "
            "Entities of a resolver left out keep their last "
            "values (stale, or not_found), or are error when they have none, with the "
            "reason 'not asked in this run'."
        ),
    )
    limit: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Trial runs: ask each resolver about at most this many entities (the first in "
            "sorted order); the others keep their last values, as for resolvers left out."
        ),
    )
    deadline_minutes: float | None = Field(
        default=None,
        gt=0,
        description=(
            "How long the run may take, waits on rate limits and backoffs included; what is "
            "still unanswered then keeps its last good values. Default: 360 (6 hours; the "
            "PIPELINE_RUN_DEADLINE_SECONDS setting)."
        ),
    )
    snapshot_date: date | None = Field(
        default=None, description="Date of the snapshot partition. Default: today (UTC)."
    )
    dry_run: bool = Field(
        default=False,
        description=(
            "Read the documents and report what the run would ask about; "
            "send no request and write nothing."
        ),
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=256,
        description=(
            "Processes extracting the documents (CPU-bound): 1 extracts them in the run's "
            "own process; N starts a local pool of N processes (under Prefect, a local Dask "
            "cluster of N process workers). With PIPELINE_DASK_ADDRESS set, the documents go "
            "to that Dask cluster instead. Resolution stays in the run's process whatever "
            "the number: one arXiv queue, 3 s between requests."
        ),
    )
    sandbox: bool = Field(
        default=False,
        description=(
            "Run against the built-in loopback double of both APIs, serving sample data "
            "(a demo without internet)."
        ),
    )

    sandbox_faults: str = Field(
        default="",
        description=(
            "Sandbox runs only: faults for the loopback double to inject, e.g. "
            "`arxiv:503:0.25,hub:5xx:0.2,hub:quota:150,seed:7` (grammar: "
            "pipeline/sandbox/faults.py). Empty: none."
        ),
    )

    @field_validator("out_dir", "raw_dir")
    @classmethod
    def _store_has_a_driver(cls, value: str | None) -> str | None:
        from pipeline.objectstore import checked_location

        if not value:
            return value
        # A ValueError names a URL that cannot hold snapshots or that no driver serves.
        where = checked_location(value)
        return where if isinstance(where, str) else value

    @field_validator("documents")
    @classmethod
    def _documents_parse(cls, documents: list[str]) -> list[str]:
        from pipeline.sources.spec import is_github, parse_github

        for text in documents:
            if is_github(text):
                parse_github(text)  # a SourceError (a ValueError) names the bad one
        return documents

    @field_validator("sources")
    @classmethod
    def _sources_read(cls, sources: str | None) -> str | None:
        if sources is not None:
            from pathlib import Path

            from pipeline.sources.spec import read_sources_file

            read_sources_file(Path(sources))  # a SourceError (a ValueError) names what is wrong
        return sources

    @field_validator("sandbox_faults")
    @classmethod
    def _faults_parse(cls, spec: str) -> str:
        if spec:
            from pipeline.sandbox.faults import faults_from_spec

            faults_from_spec(spec)  # a FaultSpecError (a ValueError) names the bad item
        return spec

    @model_validator(mode="after")
    def _faults_need_the_sandbox(self) -> RunParameters:
        if self.sandbox_faults and not self.sandbox:
            raise ValueError("sandbox_faults apply to sandbox runs only (sandbox: true)")
        return self

    @property
    def resolved_out_dir(self) -> str:
        if self.out_dir:
            return self.out_dir
        return SANDBOX_OUT_DIR if self.sandbox else DEFAULT_OUT_DIR.as_posix()

    @property
    def resolved_raw_dir(self) -> str:
        if self.raw_dir:
            return self.raw_dir
        return SANDBOX_RAW_DIR if self.sandbox else DEFAULT_RAW_DIR.as_posix()
