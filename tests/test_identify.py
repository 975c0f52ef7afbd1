"""Tests for `pipeline.links.identify`: every link form the reading lists use, and then some.

The big table states, per URL, what a careful reader says it points at; the smaller
tables pin the naming rules, the cut of glued text, the problems reported, and the
invariants (never raises, canonical forms re-identify to themselves).
"""

from __future__ import annotations

import random
from dataclasses import FrozenInstanceError
from datetime import date
from typing import NamedTuple, get_args

import pytest

from pipeline.links.identify import (
    Identity,
    Kind,
    arxiv_id_problem,
    identify,
    is_valid_github_owner,
    is_valid_github_repo,
    is_valid_hub_repo_id,
    normalise_url,
    parse_arxiv_id,
    split_collection_id,
    split_hub_asset_repo,
)

ABS = "https://arxiv.org/abs/"
HF = "https://huggingface.co/"
GH = "https://github.com/"


class Case(NamedTuple):
    url: str
    kind: Kind
    entity_id: str | None
    url_normalized: str | None = None
    """None: not checked by the table (checked elsewhere)."""
    arxiv_version: int | None = None
    asset_repo: str | None = None
    valid: bool = True


CASES: list[Case] = [
    # --- arXiv: arxiv.org in all its forms ---
    Case("https://arxiv.org/abs/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/abs/2409.12191v2", "arxiv", "2409.12191", ABS + "2409.12191", 2),
    Case("https://arxiv.org/pdf/2409.12191v1.pdf", "arxiv", "2409.12191", ABS + "2409.12191", 1),
    Case("https://arxiv.org/pdf/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/pdf/2510.21817.pdf", "arxiv", "2510.21817", ABS + "2510.21817"),
    Case("http://arxiv.org/abs/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://www.arxiv.org/pdf/2409.04429", "arxiv", "2409.04429", ABS + "2409.04429"),
    Case("https://export.arxiv.org/abs/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://browse.arxiv.org/abs/2409.12191v3", "arxiv", "2409.12191", None, 3),
    Case("https://arxiv.org/html/2412.13303v1", "arxiv", "2412.13303", ABS + "2412.13303", 1),
    Case("https://arxiv.org/html/2401.13601v1/x1.png", "arxiv", "2401.13601", None, 1),
    Case("https://arxiv.org/html/2406.11832v2/x2.png", "arxiv", "2406.11832", None, 2),
    Case("https://arxiv.org/html/2401.13601", "arxiv", "2401.13601", ABS + "2401.13601"),
    Case("https://arxiv.org/abs/2409.12191?context=cs", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/abs/2409.12191#S3", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/abs/2409.12191/", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/pdf/2409.12191v1.pdf#page=3", "arxiv", "2409.12191", None, 1),
    Case("HTTPS://ARXIV.ORG/ABS/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/abs/arXiv:2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/abs/2409%2E12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/format/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("arxiv.org/abs/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("  https://arxiv.org/abs/2409.12191\n", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/abs/2409.12191).", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://arxiv.org/abs/0704.0001", "arxiv", "0704.0001", ABS + "0704.0001"),
    Case("https://arxiv.org/abs/1412.9999", "arxiv", "1412.9999", ABS + "1412.9999"),
    Case("https://arxiv.org/abs/1501.00001", "arxiv", "1501.00001", ABS + "1501.00001"),
    # old-style identifiers; the subject class is not part of the ID
    Case("https://arxiv.org/abs/hep-th/9901001v2", "arxiv", "hep-th/9901001", None, 2),
    Case("https://arxiv.org/abs/cs/0112017", "arxiv", "cs/0112017", ABS + "cs/0112017"),
    Case("https://arxiv.org/abs/math.GT/0309136", "arxiv", "math/0309136", ABS + "math/0309136"),
    Case("https://arxiv.org/pdf/quant-ph/0201082v1.pdf", "arxiv", "quant-ph/0201082", None, 1),
    Case("https://arxiv.org/abs/astro-ph/0601001", "arxiv", "astro-ph/0601001"),
    Case("https://xxx.lanl.gov/abs/hep-th/9901001", "arxiv", "hep-th/9901001"),
    # arXiv-shaped links with invalid identifiers: kept, flagged, ID as written
    Case(
        "https://arxiv.org/abs/2413.12345", "arxiv", "2413.12345", ABS + "2413.12345", valid=False
    ),
    Case("https://arxiv.org/abs/1234.12345", "arxiv", "1234.12345", valid=False),
    Case("https://arxiv.org/abs/1501.1234", "arxiv", "1501.1234", valid=False),
    Case("https://arxiv.org/abs/0703.1234", "arxiv", "0703.1234", valid=False),
    Case("https://arxiv.org/abs/2409.123456", "arxiv", "2409.123456", valid=False),
    Case("https://arxiv.org/abs/2409.1219123", "arxiv", "2409.1219123", valid=False),
    Case("https://arxiv.org/abs/2409.00000", "arxiv", "2409.00000", valid=False),
    Case("https://arxiv.org/abs/2409.12191v0", "arxiv", "2409.12191", valid=False),
    Case("https://arxiv.org/abs/abc", "arxiv", "abc", ABS + "abc", valid=False),
    Case("https://arxiv.org/abs/foo-bar/9901001", "arxiv", "foo-bar/9901001", valid=False),
    Case("https://arxiv.org/abs/hep-th/0801001", "arxiv", "hep-th/0801001", valid=False),
    Case("https://arxiv.org/abs/acc-phys/9911001", "arxiv", "acc-phys/9911001", valid=False),
    Case("https://arxiv.org/abs/hep-th/99010012", "arxiv", "hep-th/99010012", valid=False),
    Case("https://arxiv.org/abs/", "arxiv", None, "https://arxiv.org/abs/", valid=False),
    # arxiv.org pages that are not papers
    Case(
        "https://arxiv.org/list/cs.CV/recent", "other", None, "https://arxiv.org/list/cs.CV/recent"
    ),
    Case("https://arxiv.org/", "other", None, "https://arxiv.org/"),
    Case("https://arxiv.org/a/smith_j_1", "other", None),
    Case("https://info.arxiv.org/help/api/index.html", "other", None),
    # ar5iv, alphaxiv, Hub paper pages, mirrors, DOIs
    Case("https://ar5iv.org/abs/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://ar5iv.labs.arxiv.org/html/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://alphaxiv.org/abs/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://www.alphaxiv.org/overview/2409.12191v2", "arxiv", "2409.12191", None, 2),
    Case("https://www.alphaxiv.org/explore", "other", None),
    Case("https://huggingface.co/papers/2409.02889", "arxiv", "2409.02889", ABS + "2409.02889"),
    Case("https://hf.co/papers/2409.02889", "arxiv", "2409.02889", ABS + "2409.02889"),
    Case("https://hf-mirror.com/papers/2409.02889", "arxiv", "2409.02889", ABS + "2409.02889"),
    Case("https://huggingface.co/papers/2409.02889#community", "arxiv", "2409.02889"),
    Case("https://huggingface.co/papers/2413.12345", "arxiv", "2413.12345", valid=False),
    Case("https://huggingface.co/papers", "hf_other", None, HF + "papers"),
    Case("https://huggingface.co/papers/trending", "hf_other", None, HF + "papers/trending"),
    Case("https://huggingface.co/papers/date/2025-01-02", "hf_other", None),
    Case("https://hjfy.top/arxiv/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://papers.cool/arxiv/2409.12191", "arxiv", "2409.12191", ABS + "2409.12191"),
    Case("https://www.arxivdaily.com/arxiv/2401.00001", "arxiv", "2401.00001"),
    Case("https://papers.cool/arxiv/2409.12191v2", "arxiv", "2409.12191", None, 2),
    Case("https://hjfy.top/arxiv/2413.12345", "arxiv", "2413.12345", valid=False),
    Case("https://papers.cool/arxiv/cs.CV", "other", None, "https://papers.cool/arxiv/cs.CV"),
    Case("https://www.semanticscholar.org/arxiv/2409.12191", "arxiv", "2409.12191"),
    Case("https://doi.org/10.48550/arXiv.2409.12191", "arxiv", "2409.12191"),
    Case("https://www.arxiv-vanity.com/papers/2409.12191/", "arxiv", "2409.12191"),
    Case("https://inspirehep.net/arxiv/hep-th/9901001", "arxiv", "hep-th/9901001"),
    # --- plain-text mentions (the extractor passes the mention text) ---
    Case("arXiv:2409.12191", "arxiv_mention", "2409.12191", ABS + "2409.12191"),
    Case("arXiv 2409.12191v2", "arxiv_mention", "2409.12191", ABS + "2409.12191", 2),
    Case("arxiv: 2409.12191", "arxiv_mention", "2409.12191", ABS + "2409.12191"),
    Case("ARXIV:2409.12191", "arxiv_mention", "2409.12191"),
    Case("arXiv：2409.12191", "arxiv_mention", "2409.12191"),
    Case("arXiv:hep-th/9901001", "arxiv_mention", "hep-th/9901001", ABS + "hep-th/9901001"),
    Case("arXiv:2409.12191 [cs.CV]", "arxiv_mention", "2409.12191", ABS + "2409.12191"),
    Case("[arXiv:2409.12191]", "arxiv_mention", "2409.12191"),
    Case("arXiv preprint arXiv:2409.12191", "arxiv_mention", "2409.12191"),
    Case("arXiv:2413.12345", "arxiv_mention", "2413.12345", "arXiv:2413.12345", valid=False),
    Case("arXiv:abc", "arxiv_mention", "abc", "arXiv:abc", valid=False),
    Case("arXiv:", "arxiv_mention", None, "arXiv:", valid=False),
    Case("arXiv paper", "relative", None, "arXiv paper"),
    # --- Hugging Face repos ---
    Case(
        "https://huggingface.co/Qwen/Qwen2-VL-72B",
        "hf_model",
        "Qwen/Qwen2-VL-72B",
        HF + "Qwen/Qwen2-VL-72B",
    ),
    Case(
        "https://hf-mirror.com/vikhyatk/moondream2",
        "hf_model",
        "vikhyatk/moondream2",
        HF + "vikhyatk/moondream2",
    ),
    Case(
        "https://hf.co/Qwen/Qwen2-VL-72B", "hf_model", "Qwen/Qwen2-VL-72B", HF + "Qwen/Qwen2-VL-72B"
    ),
    Case(
        "https://www.huggingface.co/Qwen/Qwen2-VL-72B",
        "hf_model",
        "Qwen/Qwen2-VL-72B",
        HF + "Qwen/Qwen2-VL-72B",
    ),
    Case(
        "https://huggingface.co/Qwen/Qwen2-VL-72B/tree/main",
        "hf_model",
        "Qwen/Qwen2-VL-72B",
        HF + "Qwen/Qwen2-VL-72B",
    ),
    Case(
        "https://huggingface.co/Qwen/Qwen2-VL-72B/tree/v1.0/onnx", "hf_model", "Qwen/Qwen2-VL-72B"
    ),
    Case("https://huggingface.co/Qwen/Qwen2-VL-72B/commits/main", "hf_model", "Qwen/Qwen2-VL-72B"),
    Case("https://huggingface.co/Qwen/Qwen2-VL-72B/discussions/3", "hf_model", "Qwen/Qwen2-VL-72B"),
    Case(
        "https://huggingface.co/Qwen/Qwen2-VL-72B?library=transformers",
        "hf_model",
        "Qwen/Qwen2-VL-72B",
    ),
    Case("https://huggingface.co/Qwen/Qwen2-VL-72B#model-card", "hf_model", "Qwen/Qwen2-VL-72B"),
    Case(
        "https://huggingface.co/Qwen/Qwen2-VL-72B.git",
        "hf_model",
        "Qwen/Qwen2-VL-72B",
        HF + "Qwen/Qwen2-VL-72B",
    ),
    Case(
        "https://huggingface.co/microsoft/Phi-3.5-vision-instruct",
        "hf_model",
        "microsoft/Phi-3.5-vision-instruct",
    ),
    Case(
        "https://huggingface.co/openbmb/MiniCPM-Llama3-V-2_5-int4",
        "hf_model",
        "openbmb/MiniCPM-Llama3-V-2_5-int4",
    ),
    Case("https://huggingface.co/01-ai/Yi-VL-34B", "hf_model", "01-ai/Yi-VL-34B"),
    Case(
        "huggingface.co/Qwen/Qwen2-VL-72B",
        "hf_model",
        "Qwen/Qwen2-VL-72B",
        HF + "Qwen/Qwen2-VL-72B",
    ),
    Case("https://huggingface.co/gpt2", "hf_model", "gpt2", HF + "gpt2"),
    Case(
        "https://huggingface.co/bert-base-uncased",
        "hf_model",
        "bert-base-uncased",
        HF + "bert-base-uncased",
    ),
    Case("https://huggingface.co/bert-base-uncased/tree/main", "hf_model", "bert-base-uncased"),
    Case(
        "https://huggingface.co/bert-base-uncased/resolve/main/config.json",
        "hf_asset",
        None,
        HF + "bert-base-uncased/resolve/main/config.json",
        asset_repo="bert-base-uncased",
    ),
    Case(
        "https://huggingface.co/datasets/lmms-lab/MMMU",
        "hf_dataset",
        "lmms-lab/MMMU",
        HF + "datasets/lmms-lab/MMMU",
    ),
    Case(
        "https://hf.co/datasets/lmms-lab/MMMU/viewer/default/test",
        "hf_dataset",
        "lmms-lab/MMMU",
        HF + "datasets/lmms-lab/MMMU",
    ),
    Case(
        "https://huggingface.co/datasets/lmms-lab/MMMU/tree/main/data",
        "hf_dataset",
        "lmms-lab/MMMU",
    ),
    Case("https://huggingface.co/datasets/squad", "hf_dataset", "squad", HF + "datasets/squad"),
    Case("https://huggingface.co/datasets/squad/viewer", "hf_dataset", "squad"),
    Case(
        "https://huggingface.co/spaces/Qwen/Qwen2.5-VL",
        "hf_space",
        "Qwen/Qwen2.5-VL",
        HF + "spaces/Qwen/Qwen2.5-VL",
    ),
    Case(
        "https://huggingface.co/spaces/THUDM/GLM-4.1V-9B-Thinking-API-Demo",
        "hf_space",
        "THUDM/GLM-4.1V-9B-Thinking-API-Demo",
    ),
    Case(
        "https://hf-mirror.com/spaces/Qwen/Qwen2.5-VL?logs=build",
        "hf_space",
        "Qwen/Qwen2.5-VL",
        HF + "spaces/Qwen/Qwen2.5-VL",
    ),
    Case(
        "https://huggingface.co/collections/meta-llama/llama-4-67f0c30d9fe03840bc9d0164",
        "hf_collection",
        "meta-llama/llama-4-67f0c30d9fe03840bc9d0164",
        HF + "collections/meta-llama/llama-4-67f0c30d9fe03840bc9d0164",
    ),
    Case(
        "https://hf-mirror.com/collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c",
        "hf_collection",
        "OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c",
        HF + "collections/OpenGVLab/internvl-25-673e1019b66e2218f68d7c1c",
    ),
    Case(
        "https://huggingface.co/collections/mistralai/mistral-large-3",
        "hf_collection",
        "mistralai/mistral-large-3",
        HF + "collections/mistralai/mistral-large-3",
    ),
    Case("https://hf.co/collections/prism-ml/bonsai-2", "hf_collection", "prism-ml/bonsai-2"),
    # Hub file assets: asset_repo in Hub URL-path notation
    Case(
        "https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/paligemma/paligemma_arch.png",
        "hf_asset",
        None,
        "https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/paligemma/paligemma_arch.png",
        asset_repo="datasets/huggingface/documentation-images",
    ),
    Case(
        "https://hf-mirror.com/Qwen/Qwen2-VL-72B/resolve/main/config.json?download=true",
        "hf_asset",
        None,
        HF + "Qwen/Qwen2-VL-72B/resolve/main/config.json?download=true",
        asset_repo="Qwen/Qwen2-VL-72B",
    ),
    Case(
        "https://huggingface.co/Qwen/Qwen2-VL-72B/raw/main/README.md",
        "hf_asset",
        None,
        asset_repo="Qwen/Qwen2-VL-72B",
    ),
    Case(
        "https://huggingface.co/Qwen/Qwen2-VL-72B/blob/main/README.md",
        "hf_asset",
        None,
        asset_repo="Qwen/Qwen2-VL-72B",
    ),
    Case(
        "https://huggingface.co/spaces/Qwen/Qwen2.5-VL/blob/main/app.py",
        "hf_asset",
        None,
        asset_repo="spaces/Qwen/Qwen2.5-VL",
    ),
    Case(
        "https://huggingface.co/datasets/squad/resolve/main/train.json",
        "hf_asset",
        None,
        asset_repo="datasets/squad",
    ),
    Case(
        "https://cdn-uploads.huggingface.co/production/uploads/x.png",
        "hf_asset",
        None,
        "https://cdn-uploads.huggingface.co/production/uploads/x.png",
    ),
    # Hub pages that are no repo
    Case("https://huggingface.co/Qwen", "hf_other", None, HF + "Qwen"),
    Case("https://hf-mirror.com/Qwen/", "hf_other", None, HF + "Qwen/"),
    Case("https://huggingface.co/", "hf_other", None, HF),
    Case("https://huggingface.co/blog/paligemma", "hf_other", None, HF + "blog/paligemma"),
    Case("https://huggingface.co/docs/transformers/index", "hf_other", None),
    Case("https://huggingface.co/transformers/model_doc/bert.html", "hf_other", None),
    Case(
        "https://huggingface.co/models?pipeline_tag=image-text-to-text",
        "hf_other",
        None,
        HF + "models?pipeline_tag=image-text-to-text",
    ),
    Case("https://huggingface.co/datasets", "hf_other", None),
    Case("https://huggingface.co/datasets?search=mmmu", "hf_other", None),
    Case("https://huggingface.co/spaces", "hf_other", None),
    Case("https://huggingface.co/spaces/launch", "hf_other", None),
    Case("https://huggingface.co/collections", "hf_other", None),
    Case("https://huggingface.co/collections/Qwen", "hf_other", None),
    Case("https://huggingface.co/organizations/Qwen/share/abc", "hf_other", None),
    Case("https://huggingface.co/settings/tokens", "hf_other", None),
    Case("https://huggingface.co/join", "hf_other", None),
    Case("https://huggingface.co/login", "hf_other", None),
    Case("https://huggingface.co/pricing", "hf_other", None),
    Case("https://huggingface.co/tasks/image-text-to-text", "hf_other", None),
    Case("https://huggingface.co/learn/nlp-course", "hf_other", None),
    Case("https://huggingface.co/api/models/Qwen/Qwen2-VL-72B", "hf_other", None),
    Case("https://discuss.huggingface.co/t/topic/123", "hf_other", None),
    Case("https://qwen-qwen2-vl.hf.space/", "hf_other", None),
    # Hub repo IDs that break the naming rules
    Case("https://huggingface.co/foo--bar/baz", "hf_model", "foo--bar/baz", valid=False),
    Case("https://huggingface.co/foo/-bar", "hf_model", "foo/-bar", valid=False),
    Case("https://huggingface.co/foo/bar..baz", "hf_model", "foo/bar..baz", valid=False),
    Case("https://huggingface.co/foo/" + "a" * 97, "hf_model", "foo/" + "a" * 97, valid=False),
    # --- GitHub repos: entity_id lower-case, the dedup key ---
    Case(
        "https://github.com/OpenGVLab/InternVL",
        "github_repo",
        "opengvlab/internvl",
        GH + "opengvlab/internvl",
    ),
    Case(
        "https://github.com/opengvlab/internvl",
        "github_repo",
        "opengvlab/internvl",
        GH + "opengvlab/internvl",
    ),
    Case(
        "https://github.com/deepseek-ai/DeepSeek-VL2/tree/main",
        "github_repo",
        "deepseek-ai/deepseek-vl2",
        GH + "deepseek-ai/deepseek-vl2",
    ),
    Case("https://github.com/Tencent/VITA/tree/VITA-E", "github_repo", "tencent/vita"),
    Case(
        "https://github.com/WePOINTS/WePOINTS/blob/main/POINTS1_5_preview.pdf",
        "github_repo",
        "wepoints/wepoints",
    ),
    Case("https://github.com/foo/bar/issues/12", "github_repo", "foo/bar", GH + "foo/bar"),
    Case("https://github.com/foo/bar/pulls", "github_repo", "foo/bar"),
    Case("https://github.com/foo/bar/pull/7/files", "github_repo", "foo/bar"),
    Case("https://github.com/foo/bar/releases", "github_repo", "foo/bar"),
    Case("https://github.com/foo/bar/releases/tag/v1.0", "github_repo", "foo/bar"),
    Case("https://github.com/foo/bar/wiki", "github_repo", "foo/bar"),
    Case("https://github.com/foo/bar.git", "github_repo", "foo/bar", GH + "foo/bar"),
    Case("https://github.com/foo/bar#readme", "github_repo", "foo/bar", GH + "foo/bar"),
    Case("https://github.com/foo/bar?tab=readme-ov-file", "github_repo", "foo/bar", GH + "foo/bar"),
    Case(
        "https://github.com/TimeMarker-LLM/TimeMarker/", "github_repo", "timemarker-llm/timemarker"
    ),
    Case("https://github.com/rednote-hilab/dots.vlm1", "github_repo", "rednote-hilab/dots.vlm1"),
    Case("https://github.com/foo/bar/blob/main/x.png", "github_repo", "foo/bar"),
    Case("http://www.github.com/foo/bar", "github_repo", "foo/bar", GH + "foo/bar"),
    Case("github.com/foo/bar", "github_repo", "foo/bar", GH + "foo/bar"),
    Case("git@github.com:foo/bar.git", "github_repo", "foo/bar", GH + "foo/bar"),
    Case("git+https://github.com/foo/bar.git", "github_repo", "foo/bar", GH + "foo/bar"),
    # GitHub file assets
    Case(
        "https://github.com/foo/bar/raw/main/x.png",
        "github_asset",
        None,
        GH + "foo/bar/raw/main/x.png",
        asset_repo="foo/bar",
    ),
    Case(
        "https://github.com/Foo/Bar/blob/main/x.png?raw=true",
        "github_asset",
        None,
        GH + "Foo/Bar/blob/main/x.png?raw=true",
        asset_repo="foo/bar",
    ),
    Case(
        "https://github.com/foo/bar/blob/main/x.png?raw=1",
        "github_asset",
        None,
        asset_repo="foo/bar",
    ),
    Case(
        "https://github.com/foo/bar/releases/download/v1/x.zip",
        "github_asset",
        None,
        asset_repo="foo/bar",
    ),
    Case(
        "https://github.com/foo/bar/archive/refs/heads/main.zip",
        "github_asset",
        None,
        asset_repo="foo/bar",
    ),
    Case(
        "https://raw.githubusercontent.com/Foo/Bar/main/x.png",
        "github_asset",
        None,
        "https://raw.githubusercontent.com/Foo/Bar/main/x.png",
        asset_repo="foo/bar",
    ),
    Case(
        "https://media.githubusercontent.com/media/foo/bar/main/x.bin",
        "github_asset",
        None,
        asset_repo="foo/bar",
    ),
    Case(
        "https://codeload.github.com/foo/bar/zip/refs/heads/main",
        "github_asset",
        None,
        asset_repo="foo/bar",
    ),
    Case("https://user-images.githubusercontent.com/123/abc.png", "github_asset", None),
    Case(
        "https://private-user-images.githubusercontent.com/1/2-x.png?jwt=abc", "github_asset", None
    ),
    Case(
        "https://objects.githubusercontent.com/github-production-release-asset/x",
        "github_asset",
        None,
    ),
    Case("https://camo.githubusercontent.com/abc/def", "github_asset", None),
    Case(
        "https://github.com/user-attachments/assets/7d1f2a3b-0000-4000-8000-000000000000",
        "github_asset",
        None,
    ),
    # github.io pages
    Case(
        "https://apollo-lmms.github.io/",
        "github_page",
        "apollo-lmms.github.io",
        "https://apollo-lmms.github.io/",
    ),
    Case(
        "https://microsoft.github.io/LLM2CLIP/",
        "github_page",
        "microsoft.github.io/LLM2CLIP",
        "https://microsoft.github.io/LLM2CLIP/",
    ),
    Case("https://qwenlm.github.io/blog/qwen2.5-vl/", "github_page", "qwenlm.github.io/blog"),
    Case(
        "https://llava-vl.github.io/llava-plus/images/llava-plus-hero.png",
        "github_page",
        "llava-vl.github.io/llava-plus",
    ),
    Case(
        "https://User.GitHub.io/index.html",
        "github_page",
        "user.github.io",
        "https://user.github.io/index.html",
    ),
    # GitHub pages that are no repo
    Case("https://github.com/QwenLM", "github_other", None, GH + "QwenLM"),
    Case("https://github.com/orgs/QwenLM/repositories", "github_other", None),
    Case("https://gist.github.com/foo/abc123", "github_other", None),
    Case("https://github.com/topics/multimodal", "github_other", None),
    Case("https://github.com/sponsors/foo", "github_other", None),
    Case("https://github.com/features/copilot", "github_other", None),
    Case("https://github.com/marketplace/actions/x", "github_other", None),
    Case("https://github.com", "github_other", None, "https://github.com/"),
    Case("https://docs.github.com/en/pages", "github_other", None),
    # GitHub names that break the naming rules
    Case("https://github.com/-foo/bar", "github_repo", "-foo/bar", valid=False),
    Case("https://github.com/foo--bar/baz", "github_repo", "foo--bar/baz", valid=False),
    Case("https://github.com/" + "a" * 40 + "/x", "github_repo", "a" * 40 + "/x", valid=False),
    Case("https://github.com/foo/中文", "github_repo", "foo/中文", valid=False),
    Case(
        "https://github.com/x/../foo/bar/./issues",
        "github_repo",
        "foo/bar",
        GH + "foo/bar/issues",
        valid=False,
    ),
    # --- everything else ---
    Case(
        "https://zhuanlan.zhihu.com/p/688215018",
        "other",
        None,
        "https://zhuanlan.zhihu.com/p/688215018",
    ),
    Case(
        "HTTPS://Example.COM:443/a/./b/../c?utm_source=x&q=1&fbclid=2#frag",
        "other",
        None,
        "https://example.com/a/c?q=1",
    ),
    Case("http://example.com:80", "other", None, "http://example.com/"),
    Case(
        "http://cogvlm2-online.cogviewai.cn:7868/",
        "other",
        None,
        "http://cogvlm2-online.cogviewai.cn:7868/",
    ),
    Case("http://101.126.42.235:30910/", "other", None, "http://101.126.42.235:30910/"),
    Case("http://[::1]:8080/x", "other", None, "http://[::1]:8080/x"),
    Case("//example.com/x", "other", None, "https://example.com/x"),
    Case("www.example.com/x", "other", None, "http://www.example.com/x"),
    Case("https://user:secret@example.com/x", "other", None, "https://example.com/x"),
    Case(
        "https://bücher.example/straße", "other", None, "https://xn--bcher-kva.example/stra%C3%9Fe"
    ),
    Case("https://example.com/a b", "other", None, "https://example.com/a%20b"),
    Case(
        "https://example.com/%7Euser/%e4%b8%ad",
        "other",
        None,
        "https://example.com/~user/%E4%B8%AD",
    ),
    Case("https://example.com/#/route/x", "other", None, "https://example.com/#/route/x"),
    Case(
        "https://example.com/x?utm_medium=a&utm_campaign=b", "other", None, "https://example.com/x"
    ),
    Case("https://example.com.", "other", None, "https://example.com/"),
    Case(
        "https://www.youtube.com/embed/tmSNw2XonxI",
        "other",
        None,
        "https://www.youtube.com/embed/tmSNw2XonxI",
    ),
    Case("https://reka-ai", "other", None, "https://reka-ai/"),
    Case("https://github.blog/2024-01-01-x/", "other", None),
    Case("mailto:someone@Example.COM", "other", None, "mailto:someone@example.com"),
    Case("javascript:void(0)", "other", None, "javascript:void(0)"),
    Case("data:image/png;base64,AAAA", "other", None, "data:image/png;base64,AAAA"),
    Case("ftp://ftp.example.org/pub/x", "other", None, "ftp://ftp.example.org/pub/x"),
    Case("https:/example.com/x", "other", None, "https://example.com/x"),
    Case("./docs/x.md", "relative", None, "./docs/x.md"),
    Case("#section", "relative", None, "#section"),
    Case("microsoft/Florence-2-large", "relative", None, "microsoft/Florence-2-large"),
    Case("/abs/2409.12191", "relative", None, "/abs/2409.12191"),
    Case("2409.12191", "relative", None, "2409.12191"),
    # garbage: kept, flagged
    Case("", "relative", None, "", valid=False),
    Case("   ", "relative", None, "", valid=False),
    Case("http://", "other", None, "http://", valid=False),
    Case("https://[::1", "other", None, "https://[::1", valid=False),
    Case("https://exa mple.com/", "other", None, valid=False),
    Case("https://example.com:99999/", "other", None, valid=False),
    Case("https://example.com:80a/", "other", None, valid=False),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{i:03d}-{c.url[:60]}" for i, c in enumerate(CASES)])
def test_identify_table(case: Case) -> None:
    got = identify(case.url)
    expected = (
        case.kind,
        case.entity_id,
        case.arxiv_version,
        case.asset_repo,
        case.valid,
    )
    assert (got.kind, got.entity_id, got.arxiv_version, got.asset_repo, got.valid) == expected
    if case.url_normalized is not None:
        assert got.url_normalized == case.url_normalized
    assert (got.problem is None) == got.valid, got


def test_table_covers_every_kind() -> None:
    kinds = {case.kind for case in CASES}
    assert kinds == set(get_args(Kind))


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://ARXIV.org/abs/2409.12191", "arxiv.org"),
        ("https://hf-mirror.com/Qwen/Qwen2-VL-72B", "hf-mirror.com"),
        ("https://bücher.example/x", "bücher.example"),
        ("http://[::1]:8080/", "::1"),
        ("https://hjfy.top/arxiv/2409.12191", "hjfy.top"),
        ("mailto:a@Example.org", "example.org"),
        ("arXiv:2409.12191", None),
        ("./x.md", None),
        ("javascript:void(0)", None),
    ],
)
def test_host_is_the_lower_case_host_as_written(url: str, host: str | None) -> None:
    assert identify(url).host == host


# --- text glued to a URL --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind", "entity_id", "trailing_text"),
    [
        ("https://github.com/foo/bar中文介绍", "github_repo", "foo/bar", "中文介绍"),
        ("https://arxiv.org/abs/2409.12191：这是", "arxiv", "2409.12191", "：这是"),
        ("https://arxiv.org/abs/2409.12191中文", "arxiv", "2409.12191", "中文"),
        ("https://arxiv.org/pdf/2409.12191v2中文", "arxiv", "2409.12191", "中文"),
        (
            "https://huggingface.co/Qwen/Qwen2-VL-7B-Instruct中文",
            "hf_model",
            "Qwen/Qwen2-VL-7B-Instruct",
            "中文",
        ),
        (
            "https://huggingface.co/spaces/Qwen/Qwen2.5-VL，试试",
            "hf_space",
            "Qwen/Qwen2.5-VL",
            "，试试",
        ),
        ("https://huggingface.co/collections/foo/bar-3中文", "hf_collection", "foo/bar-3", "中文"),
        ("https://hjfy.top/arxiv/2409.12191（翻译）", "arxiv", "2409.12191", "（翻译）"),
        ("https://user.github.io/proj中文", "github_page", "user.github.io/proj", "中文"),
        ("git+https://github.com/foo/bar.git@v1.0", "github_repo", "foo/bar", "@v1.0"),
        ("arXiv:2409.12191，见下文", "arxiv_mention", "2409.12191", "，见下文"),
        # punctuation glued to the end is not text worth keeping
        ("https://github.com/foo/bar。", "github_repo", "foo/bar", None),
        ("https://github.com/foo/bar),", "github_repo", "foo/bar", None),
        ("https://arxiv.org/abs/2409.12191v2.", "arxiv", "2409.12191", None),
        # what may follow an ID without being a cut
        ("https://arxiv.org/pdf/2409.12191v1.pdf", "arxiv", "2409.12191", None),
        ("https://arxiv.org/html/2401.13601v1/x1.png", "arxiv", "2401.13601", None),
        ("arXiv:2409.12191 [cs.CV]", "arxiv_mention", "2409.12191", None),
        ("https://github.com/foo/bar", "github_repo", "foo/bar", None),
    ],
)
def test_identifier_is_cut_from_glued_text(
    url: str, kind: Kind, entity_id: str, trailing_text: str | None
) -> None:
    got = identify(url)
    assert (got.kind, got.entity_id, got.valid, got.trailing_text) == (
        kind,
        entity_id,
        True,
        trailing_text,
    )


def test_a_glued_url_still_normalises_to_the_entity() -> None:
    assert identify("https://github.com/Foo/Bar中文").url_normalized == GH + "foo/bar"
    assert identify("https://arxiv.org/abs/2409.12191：这是").url_normalized == ABS + "2409.12191"


# --- problems say what is wrong --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://arxiv.org/abs/2413.12345", ["2413.12345", "month 13"]),
        ("https://arxiv.org/abs/1201.12345", ["1201.12345", "five-digit", "1501"]),
        ("https://arxiv.org/abs/1501.1234", ["1501.1234", "five digits"]),
        ("https://arxiv.org/abs/0612.1234", ["0612.1234", "0704"]),
        ("https://arxiv.org/abs/2409.123456", ["4 or 5 digits"]),
        ("https://arxiv.org/abs/2409.00000", ["never assigned"]),
        ("https://arxiv.org/abs/2409.12191v0", ["v1"]),
        ("https://arxiv.org/abs/abc", ["`abc`", "not an arXiv identifier"]),
        ("https://arxiv.org/abs/", ["no arXiv identifier"]),
        ("https://arxiv.org/abs/foo-bar/9901001", ["`foo-bar`", "archive"]),
        ("https://arxiv.org/abs/acc-phys/9911001", ["acc-phys", "9411", "9609"]),
        ("https://arxiv.org/abs/hep-th/0801001", ["hep-th", "0703"]),
        ("https://arxiv.org/abs/hep-th/99010012", ["7 digits"]),
        ("https://arxiv.org/abs/hep-th/9913001", ["month 13"]),
        ("arXiv:abc", ["`abc`", "not an arXiv identifier"]),
        ("https://huggingface.co/foo--bar/baz", ["`foo--bar/baz`", "--"]),
        ("https://huggingface.co/foo/-bar", ["`foo/-bar`", "start"]),
        ("https://huggingface.co/foo/" + "a" * 97, ["97 characters"]),
        ("https://github.com/-foo/bar", ["`-foo/bar`", "owner"]),
        ("https://github.com/foo/中文", ["`foo/中文`", "repo name"]),
        ("https://huggingface.co/collections/foo--x/bar", ["`foo--x`"]),
        ("https://bad_user.github.io/", ["bad_user"]),
        ("http://", ["no host"]),
        ("https://[::1", ["unclosed", "[::1"]),
        ("https://exa mple.com/", ["exa mple.com"]),
        ("https://example.com:99999/", ["99999"]),
        ("", ["empty"]),
    ],
)
def test_problem_names_what_is_wrong(url: str, words: list[str]) -> None:
    got = identify(url)
    assert not got.valid
    assert got.problem is not None
    for word in words:
        assert word in got.problem, got.problem


# --- paths that climb: dot segments and backslashes name no identifier -----------------

DOTS = "resolve away"
SLASH = "backslash"


@pytest.mark.parametrize(
    ("url", "kind", "named", "problem"),
    [
        # GitHub: `..` climbs out of what is written; a browser lands on another repo
        ("github.com/../../etc/passwd", "github_repo", "etc/passwd", DOTS),
        ("https://github.com/../../etc/passwd", "github_repo", "etc/passwd", DOTS),
        ("https://github.com/%2e%2e/%2e%2e/etc/passwd", "github_repo", "etc/passwd", DOTS),
        ("https://github.com/%2E./etc/passwd", "github_repo", "etc/passwd", DOTS),
        ("https://github.com/.%2E/etc/passwd", "github_repo", "etc/passwd", DOTS),
        ("https://github.com/./foo/bar", "github_repo", "foo/bar", DOTS),
        ("https://github.com/foo/bar/../baz", "github_repo", "foo/baz", DOTS),
        ("https://github.com/foo\\..\\etc/passwd", "github_repo", "foo\\..\\etc/passwd", SLASH),
        ("https://github.com/foo/bar%5C..%5Cbaz", "github_repo", "foo/bar", SLASH),
        ("https://github.com/foo/bar%5c", "github_repo", "foo/bar", SLASH),
        ("https://github.com/foo/bar/../../x/y/raw/f", "github_asset", "x/y", DOTS),
        ("https://raw.githubusercontent.com/../etc/passwd/f", "github_asset", "etc/passwd", DOTS),
        ("https://foo.github.io/../bar/", "github_page", "foo.github.io/bar", DOTS),
        # Hugging Face
        ("https://huggingface.co/../../etc/passwd", "hf_model", "etc/passwd", DOTS),
        ("https://huggingface.co/datasets/../../etc/passwd", "hf_model", "etc/passwd", DOTS),
        ("https://hf.co/datasets/%2e%2e/foo/bar", "hf_model", "foo/bar", DOTS),
        ("https://huggingface.co/datasets/x/../foo/bar", "hf_dataset", "foo/bar", DOTS),
        ("https://huggingface.co/spaces/foo/bar/../baz", "hf_space", "foo/baz", DOTS),
        ("https://huggingface.co/collections/foo/../../Qwen/x", "hf_model", "Qwen/x", DOTS),
        ("https://huggingface.co/foo/bar/../../x/y/resolve/main/f", "hf_asset", "x/y", DOTS),
        ("https://huggingface.co/foo/bar\\baz", "hf_model", "foo/bar", SLASH),
        ("https://huggingface.co/foo%5Cbar/baz", "hf_model", "foo%5Cbar/baz", SLASH),
        # arXiv, on arxiv.org and wherever an ID is embedded
        ("https://arxiv.org/abs/../abs/2409.12191", "arxiv", "2409.12191", DOTS),
        ("https://arxiv.org/abs/2409.12191/../2501.00001", "arxiv", "2501.00001", DOTS),
        ("https://arxiv.org/abs/2409.12191/%2e%2e/2501.00001", "arxiv", "2501.00001", DOTS),
        ("https://arxiv.org/abs/2409.12191%5C..", "arxiv", "2409.12191", SLASH),
        ("https://huggingface.co/papers/../papers/2409.12191", "arxiv", "2409.12191", DOTS),
        ("https://example.org/x/../arxiv/2409.12191", "arxiv", "2409.12191", DOTS),
    ],
)
def test_paths_that_climb_name_no_identifier(
    url: str, kind: Kind, named: str, problem: str
) -> None:
    """Kept with the kind and the ID (or asset repo) a browser would land on, flagged, so
    never sent, and with no canonical URL."""
    got = identify(url)
    assert (got.kind, got.valid, got.entity_id or got.asset_repo) == (kind, False, named), got
    assert got.problem is not None and problem in got.problem
    assert ".." not in got.url_normalized.split("/")


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a/../b",  # names no entity: nothing to flag
        "https://github.com/foo/bar.js",
        "https://github.com/foo/bar/blob/main/a..b.md",
        "https://github.com/foo/..bar",
        "https://huggingface.co/foo/bar.v2/blob/main/..a",
        "https://arxiv.org/abs/2409.12191?x=../..",
        "https://github.com/foo/bar#../..",
    ],
)
def test_dots_that_are_not_segments_are_no_problem(url: str) -> None:
    got = identify(url)
    assert (got.valid, got.problem) == (True, None), got


# --- future arXiv IDs: checked only when a date is injected ----------------------------


@pytest.mark.parametrize(
    ("arxiv_id", "today", "valid"),
    [
        ("2611.00001", None, True),
        ("9912.00001", None, True),  # the scheme alone allows it
        ("2611.00001", date(2026, 11, 22), True),
        ("2612.00001", date(2026, 11, 22), False),
        ("2701.00001", date(2026, 12, 31), False),
        ("2701.00001", date(2027, 1, 1), True),
        ("hep-th/9901001", date(2026, 11, 22), True),
    ],
)
def test_future_ids_are_flagged_only_against_an_injected_date(
    arxiv_id: str, today: date | None, valid: bool
) -> None:
    got = identify(ABS + arxiv_id, today=today)
    assert (got.kind, got.entity_id, got.valid) == ("arxiv", arxiv_id, valid)
    assert (parse_arxiv_id(arxiv_id, today=today) is not None) == valid
    if not valid:
        assert got.problem is not None and "later than the current month" in got.problem


# --- parse_arxiv_id --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2409.12191", ("2409.12191", None)),
        ("2409.12191v2", ("2409.12191", 2)),
        ("2409.12191v12", ("2409.12191", 12)),
        (" 2409.12191 ", ("2409.12191", None)),
        ("arXiv:2409.12191", ("2409.12191", None)),
        ("arxiv:2409.12191v3", ("2409.12191", 3)),
        ("0704.0001", ("0704.0001", None)),
        ("1412.9999", ("1412.9999", None)),
        ("1501.00001", ("1501.00001", None)),
        ("hep-th/9901001", ("hep-th/9901001", None)),
        ("hep-th/9901001v2", ("hep-th/9901001", 2)),
        ("math.GT/0309136", ("math/0309136", None)),
        ("HEP-TH/9901001", ("hep-th/9901001", None)),
        ("cs/0112017", ("cs/0112017", None)),
        ("q-bio/0309001", ("q-bio/0309001", None)),
        ("2413.12345", None),
        ("2400.12345", None),
        ("1234.12345", None),
        ("1501.1234", None),
        ("0703.1234", None),
        ("0000.0000", None),
        ("2409.00000", None),
        ("2409.123", None),
        ("2409.123456", None),
        ("2409.12191v0", None),
        ("2409.12191v", None),
        ("2409.12191x", None),
        ("abc", None),
        ("", None),
        ("https://arxiv.org/abs/2409.12191", None),
        ("0305100v2", None),
        ("q-bio/0201001", None),  # q-bio opened in 2003-09
        ("stat/0701001", None),  # stat never had old-style IDs
        ("hep-th/0704001", None),
        ("2409.12191 2409.12192", None),
        # paths, URLs and escapes are no identifiers
        ("../2409.12191", None),
        ("2409.12191/..", None),
        ("2409.12191/../2501.00001", None),
        ("hep-th/../9901001", None),
        ("../hep-th/9901001", None),
        ("2409%2E12191", None),
        ("2409.12191%2F..", None),
        ("2409.12191\\..", None),
        ("arXiv:../2409.12191", None),
        ("arxiv.org/abs/2409.12191", None),
        ("/2409.12191", None),
        ("2409.12191\n", ("2409.12191", None)),  # outer whitespace, as documented
        ("2409.12191\nx", None),
    ],
)
def test_parse_arxiv_id(text: str, expected: tuple[str, int | None] | None) -> None:
    assert parse_arxiv_id(text) == expected
    assert (arxiv_id_problem(text) is None) == (expected is not None)


# --- naming rules ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repo_id", "valid"),
    [
        ("Qwen/Qwen2-VL-72B", True),
        ("microsoft/Phi-3.5-vision-instruct", True),
        ("openbmb/MiniCPM-Llama3-V-2_5-int4", True),
        ("01-ai/Yi-VL-34B", True),
        ("gpt2", True),
        ("bert-base-uncased", True),
        ("a", True),
        ("foo/" + "a" * 96, True),
        ("foo/" + "a" * 97, False),
        ("foo/bar/baz", False),
        ("foo--bar/baz", False),
        ("foo/bar..baz", False),
        ("-foo/bar", False),
        ("foo/bar-", False),
        ("foo./bar", False),
        ("foo/.bar", False),
        ("foo/bar.git", False),
        ("foo/bar baz", False),
        ("foo/bär", False),
        ("foo/中文", False),
        ("", False),
        ("/bar", False),
        ("foo/", False),
        # dot segments, paths, URLs and escapes are no repo IDs
        ("..", False),
        (".", False),
        ("../bar", False),
        ("foo/..", False),
        ("./bar", False),
        ("foo/.", False),
        ("../../etc/passwd", False),
        ("%2e%2e/bar", False),
        ("foo%2Fbar", False),
        ("foo\\bar", False),
        ("foo//bar", False),
        ("/foo/bar", False),
        ("https://huggingface.co/foo/bar", False),
        ("huggingface.co/foo/bar", False),
        ("datasets/foo/bar", False),
        ("foo/bar\n", False),
        (" foo/bar", False),
    ],
)
def test_is_valid_hub_repo_id(repo_id: str, valid: bool) -> None:
    assert is_valid_hub_repo_id(repo_id) is valid


@pytest.mark.parametrize(
    ("owner", "valid"),
    [
        ("a", True),
        ("OpenGVLab", True),
        ("deepseek-ai", True),
        ("a" * 39, True),
        ("a" * 40, False),
        ("-foo", False),
        ("foo-", False),
        ("foo--bar", False),
        ("foo_bar", False),
        ("foo.bar", False),
        ("", False),
    ],
)
def test_is_valid_github_owner(owner: str, valid: bool) -> None:
    assert is_valid_github_owner(owner) is valid


@pytest.mark.parametrize(
    ("repo", "valid"),
    [
        ("OpenGVLab/InternVL", True),
        ("rednote-hilab/dots.vlm1", True),
        ("foo/bar_baz", True),
        ("foo/.github", True),
        ("foo/" + "a" * 100, True),
        ("foo/" + "a" * 101, False),
        ("foo/.", False),
        ("foo/..", False),
        ("foo/bar baz", False),
        ("foo/bär", False),
        ("foo", False),
        ("foo/", False),
        ("-foo/bar", False),
        ("foo/bar/baz", False),
    ],
)
def test_is_valid_github_repo(repo: str, valid: bool) -> None:
    assert is_valid_github_repo(repo) is valid


@pytest.mark.parametrize(
    ("asset_repo", "expected"),
    [
        ("Qwen/Qwen2-VL-72B", ("model", "Qwen/Qwen2-VL-72B")),
        ("gpt2", ("model", "gpt2")),
        (
            "datasets/huggingface/documentation-images",
            ("dataset", "huggingface/documentation-images"),
        ),
        ("datasets/squad", ("dataset", "squad")),
        ("spaces/Qwen/Qwen2.5-VL", ("space", "Qwen/Qwen2.5-VL")),
    ],
)
def test_split_hub_asset_repo(asset_repo: str, expected: tuple[str, str]) -> None:
    assert split_hub_asset_repo(asset_repo) == expected


def test_asset_repo_notation_round_trips_through_split() -> None:
    for url, repo_type, repo_id in [
        (HF + "datasets/o/n/resolve/main/x", "dataset", "o/n"),
        (HF + "spaces/o/n/blob/main/app.py", "space", "o/n"),
        (HF + "o/n/raw/main/README.md", "model", "o/n"),
    ]:
        asset_repo = identify(url).asset_repo
        assert asset_repo is not None
        assert split_hub_asset_repo(asset_repo) == (repo_type, repo_id)


@pytest.mark.parametrize(
    ("collection_id", "expected"),
    [
        (
            "meta-llama/llama-4-67f0c30d9fe03840bc9d0164",
            ("meta-llama", "llama-4", "67f0c30d9fe03840bc9d0164"),
        ),
        ("mistralai/mistral-large-3", ("mistralai", "mistral-large-3", None)),
        ("prism-ml/bonsai-2", ("prism-ml", "bonsai-2", None)),
    ],
)
def test_split_collection_id(collection_id: str, expected: tuple[str, str, str | None]) -> None:
    assert split_collection_id(collection_id) == expected


# --- normalise_url ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://Example.COM", "https://example.com/"),
        ("https://example.com:443/x", "https://example.com/x"),
        ("https://example.com:8443/x", "https://example.com:8443/x"),
        ("http://example.com/a/../b/./c", "http://example.com/b/c"),
        ("https://example.com/x?a=1&utm_source=t&b=2&gclid=z", "https://example.com/x?a=1&b=2"),
        ("https://example.com/x?spm=a.b&id=3", "https://example.com/x?id=3"),
        ("https://example.com/x?", "https://example.com/x"),
        ("https://example.com/x#section", "https://example.com/x"),
        ("https://example.com/#!/page", "https://example.com/#!/page"),
        ("https://example.com/%41%2f", "https://example.com/A%2F"),
        ("https://example.com/100%", "https://example.com/100%25"),
        ("https://例え.jp/パス", "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"),
        ("https://ｇｉｔｈｕｂ.com/x", "https://github.com/x"),
        ("https://example.com/a\tb\n", "https://example.com/ab"),
        ("https://example.com/x\x00y", "https://example.com/x%00y"),
        ("\u200bhttps://example.com/x\ufeff", "https://example.com/x"),
        ("https://github.com/Foo/Bar/tree/main", "https://github.com/Foo/Bar/tree/main"),
        ("./docs/x.md", "./docs/x.md"),
        ("https://[::1", "https://[::1"),
        ("MAILTO:a@B.org", "mailto:a@b.org"),
        ("mailto:", "mailto:"),
        ("arXiv:", "arxiv:"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


def test_normalise_url_is_idempotent() -> None:
    for case in CASES:
        once = normalise_url(case.url)
        assert normalise_url(once) == once, case.url


# --- invariants ------------------------------------------------------------------------

_ENTITY_KINDS = {
    "arxiv",
    "arxiv_mention",
    "hf_model",
    "hf_dataset",
    "hf_space",
    "hf_collection",
    "github_repo",
}


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in _ENTITY_KINDS and c.valid])
def test_canonical_url_identifies_the_same_entity(case: Case) -> None:
    first = identify(case.url)
    again = identify(first.url_normalized)
    expected_kind = "arxiv" if first.kind == "arxiv_mention" else first.kind
    assert (again.kind, again.entity_id, again.valid) == (expected_kind, first.entity_id, True)


@pytest.mark.parametrize("case", [c for c in CASES if c.kind in ("arxiv", "arxiv_mention")])
def test_valid_arxiv_entity_ids_reparse_as_themselves(case: Case) -> None:
    got = identify(case.url)
    if got.valid:
        assert got.entity_id is not None
        assert parse_arxiv_id(got.entity_id) == (got.entity_id, None)
        assert got.url_normalized == ABS + got.entity_id
    else:
        # Nothing canonical is made up for an invalid ID: the link keeps its own URL.
        assert got.problem is not None
        own = case.url.strip() if got.kind == "arxiv_mention" else normalise_url(case.url)
        assert got.url_normalized == own


def test_every_mirror_of_a_hub_repo_is_one_entity() -> None:
    forms = [
        "https://huggingface.co/Qwen/Qwen2-VL-72B",
        "https://www.huggingface.co/Qwen/Qwen2-VL-72B/",
        "https://hf.co/Qwen/Qwen2-VL-72B?x=1",
        "https://hf-mirror.com/Qwen/Qwen2-VL-72B/tree/main",
        "http://huggingface.co/Qwen/Qwen2-VL-72B#files",
    ]
    assert {(identify(u).entity_id, identify(u).url_normalized) for u in forms} == {
        ("Qwen/Qwen2-VL-72B", HF + "Qwen/Qwen2-VL-72B")
    }


def test_case_variants_of_a_github_repo_are_one_entity() -> None:
    forms = [
        "https://github.com/OpenGVLab/InternVL",
        "https://github.com/opengvlab/internvl",
        "https://GitHub.com/OPENGVLAB/INTERNVL.git",
        "git@github.com:OpenGVLab/InternVL.git",
        "https://github.com/OpenGVLab/InternVL/tree/main/internvl_chat",
    ]
    assert {identify(u).entity_id for u in forms} == {"opengvlab/internvl"}


def test_every_form_of_an_arxiv_paper_is_one_entity() -> None:
    forms = [
        "https://arxiv.org/abs/2409.12191",
        "http://www.arxiv.org/pdf/2409.12191v2.pdf",
        "https://export.arxiv.org/abs/2409.12191v1",
        "https://arxiv.org/html/2409.12191v2/x1.png",
        "https://huggingface.co/papers/2409.12191",
        "https://hjfy.top/arxiv/2409.12191",
        "https://www.alphaxiv.org/overview/2409.12191",
        "https://ar5iv.labs.arxiv.org/html/2409.12191",
        "arXiv:2409.12191v2",
    ]
    assert {(identify(u).entity_id, identify(u).url_normalized) for u in forms} == {
        ("2409.12191", ABS + "2409.12191")
    }


def test_identity_is_immutable() -> None:
    got = identify("https://arxiv.org/abs/2409.12191")
    with pytest.raises(FrozenInstanceError):
        got.kind = "other"  # type: ignore[misc]


def test_a_10_kb_url_is_classified() -> None:
    long_path = "a/" * 5000
    got = identify(f"https://example.com/{long_path}")
    assert (got.kind, got.valid) == ("other", True)
    assert got.url_normalized == f"https://example.com/{long_path}"
    long_repo = identify(GH + "foo/bar/blob/main/" + "x" * 10_000)
    assert (long_repo.kind, long_repo.entity_id) == ("github_repo", "foo/bar")


_FUZZ_BASES = [
    "https://arxiv.org/abs/2409.12191v2",
    "https://huggingface.co/datasets/o/n/resolve/main/x.png",
    "https://github.com/foo/bar/blob/main/x.png?raw=true",
    "https://hf-mirror.com/collections/o/s-673e1019b66e2218f68d7c1c",
    "https://user.github.io/p/",
    "arXiv:hep-th/9901001v1",
    "http://[::1]:80/x",
    "mailto:a@b.c",
    "//example.com",
    "www.example.com",
    "",
]
_FUZZ_ALPHABET = list(
    "/:?#[]@!$&'()*+,;=%-._~ \t\n\x00\x7fAZaz09vV中文：，。（）\u200b\ufeff\ud800\U0001f600ßİ"
)


def _fuzz_inputs(count: int) -> list[str]:
    rng = random.Random(20261122)  # fixed seed: the same inputs on every run
    inputs = []
    for _ in range(count):
        text = list(rng.choice(_FUZZ_BASES))
        for _ in range(rng.randint(1, 6)):
            position = rng.randint(0, len(text))
            operation = rng.random()
            if operation < 0.5:
                text.insert(position, rng.choice(_FUZZ_ALPHABET))
            elif operation < 0.8 and text:
                del text[min(position, len(text) - 1)]
            else:
                text[position:position] = list(rng.choice(_FUZZ_BASES))
        inputs.append("".join(text))
    return inputs


@pytest.mark.parametrize("chunk", range(4))
def test_never_raises_on_fuzzed_input(chunk: int) -> None:
    inputs = _fuzz_inputs(2000)[chunk * 500 : (chunk + 1) * 500]
    for text in inputs:
        got = identify(text)
        assert isinstance(got, Identity)
        # The last-resort guard in `identify` must never be what answered.
        assert not (got.problem or "").startswith("cannot be classified"), (text, got)
        assert (got.problem is None) == got.valid, (text, got)
        assert isinstance(got.url_normalized, str)
        if got.kind in ("arxiv", "arxiv_mention") and got.valid:
            assert got.entity_id is not None
            assert parse_arxiv_id(got.entity_id) == (got.entity_id, None), text
        if got.kind == "relative":
            assert got.host is None


@pytest.mark.parametrize(
    "text",
    [
        "http://",
        "https://",
        "https://[::1",
        "https://[",
        "https://]",
        "https://:80",
        "https://@",
        "https://a@b@c",
        "https://%zz",
        "https://%00",
        "https://\ud800.com",
        "https://xn--.com",
        "https://" + "a" * 64 + ".ü",
        "http://example.com:99999999999999999999",
        "::::",
        "%",
        "\x00",
        "[",
        "arXiv",
        "arxiv:",
        "git@",
        "git@github.com:",
        "https://github.com/%",
        "https://huggingface.co/%E4%B8%AD/%E6%96%87",
        "javascript:",
        "mailto:",
        "https:",
        "data:,",
        "x:.",
    ],
)
def test_garbage_is_kept_not_raised(text: str) -> None:
    got = identify(text)
    assert isinstance(got, Identity)
    assert not (got.problem or "").startswith("cannot be classified"), got
