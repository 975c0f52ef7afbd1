"""A synthetic corpus shaped like the seed reading lists, synthetic entity IDs, and
synthetic published snapshots (`synthetic_snapshot`, for the nightly report at scale).

Documents mix what the five seeds hold: dated bullet lists with Chinese annotations,
numbered lists of Zhihu write-ups, "**Arxiv**: [...]<br>" model cards under headings,
GitHub alert quotes, tables with dates, shields.io badges, HTML blocks (`<p align>`,
`<details>`, `<a><img></a>`), images, bare URLs, `arXiv:` mentions, front matter, and
links that must not count (inside code fences and HTML comments). Link density is close
to the seeds' (~8 links per KB).

Everything is a pure function of (`seed`, document index): the same spec writes the same
bytes on any machine, and a document can be regenerated alone. arXiv IDs are drawn from
a shared pool with a skew, so lists overlap as real ones do (popular papers everywhere).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

MB = 1024 * 1024

# -- synthetic identifiers (shared with the scale benchmark) -----------------------------

_MONTHS = tuple(f"{yy:02d}{mm:02d}" for yy in range(20, 26) for mm in range(1, 13))
"""2001-2512: months of five-digit arXiv numbers, all valid and in the past."""
_MAX_SEQUENCE = 99_999


def arxiv_id_for(index: int) -> str:
    """The `index`-th synthetic arXiv ID (`YYMM.NNNNN`): distinct for distinct indexes,
    valid by arXiv's scheme, never in the future."""
    if index < 0:
        raise ValueError(f"arXiv ID index must not be negative: {index}")
    month = _MONTHS[index % len(_MONTHS)]
    sequence = index // len(_MONTHS) + 1
    if sequence > _MAX_SEQUENCE:
        raise ValueError(f"arXiv ID index too large: {index}")
    return f"{month}.{sequence:05d}"


def synthetic_arxiv_ids(count: int, start: int = 0) -> list[str]:
    """`count` distinct synthetic arXiv IDs, from the `start`-th on."""
    return [arxiv_id_for(index) for index in range(start, start + count)]


_ORGS = (
    "OpenGVLab", "Qwen", "deepseek-ai", "llava-hf", "BAAI", "THUDM", "OpenBMB", "microsoft",
    "google", "facebook", "apple", "nvidia", "mistralai", "internlm", "lmms-lab", "AIDC-AI",
    "HuggingFaceM4", "Salesforce", "allenai", "moonshotai", "rhymes-ai", "stepfun-ai",
)  # fmt: skip
_FAMILIES = (
    "VisionChat", "OmniLM", "PixelReasoner", "VideoSage", "DocOwl", "MiniVL", "InternView",
    "LLaVA-Next", "Qwen-Omni", "CogView", "Eagle", "Cambrian", "Molmo", "Aria", "Kimi-VL",
    "Phi-Vision", "Idefics", "BLIP", "Florence", "SigLIP", "Emu", "Chameleon", "Janus",
)  # fmt: skip
_SIZES = ("1B", "2B", "3B", "7B", "8B", "13B", "26B", "34B", "72B", "0.5B", "1.5B", "90B")
_VARIANTS = ("Instruct", "Chat", "Base", "hf", "Preview", "GGUF", "AWQ", "Thinking")


def model_id_for(index: int) -> str:
    """The `index`-th synthetic Hub model ID (`org-N/Family-vK-7B-Instruct`), distinct for
    distinct indexes and valid by the Hub's naming rules."""
    if index < 0:
        raise ValueError(f"model ID index must not be negative: {index}")
    org = _ORGS[index % len(_ORGS)]
    family = _FAMILIES[(index // len(_ORGS)) % len(_FAMILIES)]
    generation = index // (len(_ORGS) * len(_FAMILIES))
    size = _SIZES[index % len(_SIZES)]
    variant = _VARIANTS[index % len(_VARIANTS)]
    return f"{org}/{family}-v{generation}-{size}-{variant}"


def synthetic_model_ids(count: int, start: int = 0) -> list[str]:
    """`count` distinct synthetic Hub model IDs, from the `start`-th on."""
    return [model_id_for(index) for index in range(start, start + count)]


# -- the corpus --------------------------------------------------------------------------


@dataclass(frozen=True)
class CorpusSpec:
    """What to generate. The same spec always yields the same bytes."""

    documents: int = 1000
    total_bytes: int = 100 * MB
    """Approximate total size (UTF-8); each document lands within a block of its target."""
    seed: int = 20260101
    arxiv_pool: int = 60_000
    """Distinct arXiv IDs the documents draw from."""

    def __post_init__(self) -> None:
        if self.documents < 1:
            raise ValueError(f"a corpus needs at least one document, not {self.documents}")
        if self.total_bytes < self.documents * 1024:
            raise ValueError(
                f"total_bytes={self.total_bytes} leaves less than 1 KB per document"
                f" for {self.documents} documents"
            )
        if not 1 <= self.arxiv_pool <= len(_MONTHS) * _MAX_SEQUENCE:
            raise ValueError(f"arxiv_pool out of range: {self.arxiv_pool}")

    @property
    def name(self) -> str:
        return f"corpus-{self.documents}docs-{self.total_bytes}B-seed{self.seed}"

    def target_bytes(self, index: int) -> int:
        """Document `index`'s target size: between half and one and a half times the mean,
        the spread deterministic, the mean exact over the corpus (pairs mirror each other)."""
        mean = self.total_bytes / self.documents
        pair = index // 2
        spread = random.Random(f"{self.seed}:size:{pair}").uniform(-0.5, 0.5)
        if index % 2 == 1:
            spread = -spread
        if index == self.documents - 1 and self.documents % 2 == 1:
            spread = 0.0  # the odd one out has no mirror
        return max(1024, round(mean * (1 + spread)))


@dataclass(frozen=True)
class CorpusInfo:
    """A corpus on disk."""

    directory: Path
    spec: CorpusSpec
    files: int
    total_bytes: int
    sha256: str
    """Digest over the documents in order: same digest, same corpus."""


MANIFEST = "_corpus.json"
"""Written last: a directory without it holds an unfinished corpus."""


def document_name(index: int) -> str:
    return f"list_{index:05d}.md"


def generate_document(spec: CorpusSpec, index: int) -> str:
    """Document `index` of the corpus `spec`."""
    if not 0 <= index < spec.documents:
        raise ValueError(f"document index {index} outside 0..{spec.documents - 1}")
    writer = _Writer(random.Random(f"{spec.seed}:doc:{index}"), spec.arxiv_pool)
    return writer.document(spec.target_bytes(index))


def iter_documents(spec: CorpusSpec) -> Iterator[tuple[str, str]]:
    """(file name, text) of every document, in order."""
    for index in range(spec.documents):
        yield document_name(index), generate_document(spec, index)


def write_corpus(spec: CorpusSpec, root: Path) -> CorpusInfo:
    """The corpus under `root/<spec.name>/`, generated unless a complete one is there."""
    directory = root / spec.name
    manifest = directory / MANIFEST
    if manifest.is_file():
        recorded = json.loads(manifest.read_text("utf-8"))
        if recorded.get("spec") == asdict(spec):
            return CorpusInfo(
                directory, spec, recorded["files"], recorded["total_bytes"], recorded["sha256"]
            )
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.md"):
        stale.unlink()
    digest = hashlib.sha256()
    total = 0
    for name, text in iter_documents(spec):
        data = text.encode("utf-8")
        (directory / name).write_bytes(data)
        digest.update(hashlib.sha256(data).digest())
        total += len(data)
    info = CorpusInfo(directory, spec, spec.documents, total, digest.hexdigest())
    manifest.write_text(
        json.dumps(
            {"spec": asdict(spec), "files": info.files, "total_bytes": total, "sha256": info.sha256}
        ),
        "utf-8",
    )
    return info


# -- writing one document ----------------------------------------------------------------

_TITLE_HEADS = (
    "Towards", "Scaling", "Rethinking", "Unifying", "Bridging", "Exploring", "Aligning",
    "Grounding", "Learning", "Improving", "Benchmarking", "Revisiting", "Enhancing",
)  # fmt: skip
_TITLE_WORDS = (
    "Vision-Language Models", "Multimodal Large Language Models", "Visual Instruction Tuning",
    "Long Video Understanding", "High-Resolution Perception", "Interleaved Image-Text Data",
    "Visual Reasoning", "Document Understanding", "Spatial Intelligence", "Embodied Agents",
    "Reinforcement Learning", "Preference Optimization", "Token Compression",
    "Mixture-of-Experts", "Any-to-Any Generation", "Chain-of-Thought", "OCR-free Parsing",
    "Hallucination Mitigation", "Audio-Visual Speech", "Dense Grounded Captioning",
)  # fmt: skip
_TITLE_TAILS = (
    "with Dynamic Resolution", "at Scale", "from Scratch", "via Synthetic Data",
    "for Open-World Perception", "without Pretraining", "in the Wild", "on a Budget",
    "through Self-Reflection", "across Modalities", "with Frozen Encoders",
)  # fmt: skip
_ZH = (
    "达摩院开源的多模态数据集，由上课视频而来。", "微软出品，将CLIP中的text encoder替换成LLM。",
    "Meta提出长视频理解方法。", "支持更长的上下文和更复杂的文本。", "效果接近GPT-4V。",
    "提出以视觉为中心的benchmark，训练新模型。", "解决了多模态稀疏学习中的性能下降问题。",
    "用视频特有的encoder提升视频理解能力而非image encoder。", "上海AI Lab出品。",
    "集成图像编码器、大型语言模型（LLM）和图像解码器。", "1B 到 78B 都有。", "微信出品。",
    "采用了文本的下一个标记预测和图像的扩散作为目标函数。", "翻译见知乎。", "推荐阅读！",
)  # fmt: skip
_ZH_HEADINGS = (
    "最新动态", "经典论文", "视频理解", "多模态大模型", "数据集", "评测基准", "技术报告",
    "强化学习", "具身智能", "文档理解", "其他资源",
)  # fmt: skip
_BLOG_HOSTS = (
    "https://zhuanlan.zhihu.com/p/", "https://blog.gopenai.com/post-", "https://mp.weixin.qq.com/s/",
    "https://www.bilibili.com/video/BV", "https://medium.com/@lab/",
)  # fmt: skip


class _Writer:
    """One document's writer: every choice comes from its own seeded generator."""

    def __init__(self, rng: random.Random, arxiv_pool: int) -> None:
        self.rng = rng
        self.arxiv_pool = arxiv_pool

    # -- atoms -------------------------------------------------------------------------
    def pick(self, items: tuple[str, ...]) -> str:
        return items[self.rng.randrange(len(items))]

    def arxiv_id(self) -> str:
        # Squaring a uniform draw skews towards the pool's head: popular papers recur.
        return arxiv_id_for(int(self.arxiv_pool * self.rng.random() ** 2))

    def date(self) -> str:
        year, month = self.rng.randint(2019, 2025), self.rng.randint(1, 12)
        form = self.rng.randrange(4)
        if form == 0:
            return f"{year}.{month:02d}"
        if form == 1:
            return f"[{year}.{month:02d}]"
        if form == 2:
            return f"{year}-{month:02d}-{self.rng.randint(1, 28):02d}"
        return f"{year}年{month}月"

    def name(self) -> str:
        family = self.pick(_FAMILIES)
        return family if self.rng.random() < 0.5 else f"{family}-{self.rng.randint(1, 4)}"

    def title(self) -> str:
        body = f"{self.pick(_TITLE_HEADS)} {self.pick(_TITLE_WORDS)}"
        if self.rng.random() < 0.5:
            body += f" {self.pick(_TITLE_TAILS)}"
        return f"{self.name()}: {body}" if self.rng.random() < 0.7 else body

    def arxiv_url(self, arxiv_id: str) -> str:
        form = self.rng.randrange(6)
        version = f"v{self.rng.randint(1, 3)}" if self.rng.random() < 0.3 else ""
        if form == 0:
            return f"https://arxiv.org/pdf/{arxiv_id}{version}"
        if form == 1:
            return f"https://arxiv.org/html/{arxiv_id}{version or 'v1'}"
        if form == 2:
            return f"http://arxiv.org/abs/{arxiv_id}"
        return f"https://arxiv.org/abs/{arxiv_id}{version}"

    def repo(self) -> str:
        return f"{self.pick(_ORGS)}/{self.name()}"

    def hub_url(self) -> str:
        roll = self.rng.random()
        host = "https://hf-mirror.com" if self.rng.random() < 0.2 else "https://huggingface.co"
        if roll < 0.6:
            return f"{host}/{self.repo()}-{self.pick(_SIZES)}"
        if roll < 0.75:
            return f"{host}/datasets/{self.repo()}-Data"
        if roll < 0.9:
            return f"{host}/spaces/{self.repo()}-demo"
        slug = f"{self.name().lower()}-{self.rng.getrandbits(96):024x}"
        return f"{host}/collections/{self.pick(_ORGS)}/{slug}"

    def github_url(self) -> str:
        repo = self.repo()
        roll = self.rng.random()
        if roll < 0.15:
            return f"https://github.com/{repo}/tree/main"
        if roll < 0.25:
            return f"https://{repo.split('/')[0].lower()}.github.io/{repo.split('/')[1]}/"
        return f"https://github.com/{repo}"

    def blog_url(self) -> str:
        return f"{self.pick(_BLOG_HOSTS)}{self.rng.randrange(10**8, 10**9)}"

    def badge(self) -> str:
        repo = self.repo()
        kind = self.rng.randrange(3)
        if kind == 0:
            return (
                f"[![Stars](https://img.shields.io/github/stars/{repo}?style=social)]"
                f"(https://github.com/{repo})"
            )
        if kind == 1:
            return (
                "[![arXiv](https://img.shields.io/badge/arXiv-"
                f"{self.arxiv_id()}-b31b1b.svg)]({self.arxiv_url(self.arxiv_id())})"
            )
        return (
            "[![HF](https://img.shields.io/badge/%F0%9F%A4%97-Models-yellow)]"
            f"(https://huggingface.co/{repo})"
        )

    def zh(self) -> str:
        return self.pick(_ZH)

    # -- blocks ------------------------------------------------------------------------
    def dated_list(self) -> str:
        lines = [f"## {self.pick(_ZH_HEADINGS)}", ""]
        for _ in range(self.rng.randint(8, 30)):
            roll = self.rng.random()
            if roll < 0.55:
                target = self.arxiv_url(self.arxiv_id())
            elif roll < 0.7:
                target = self.github_url()
            elif roll < 0.8:
                target = self.hub_url()
            else:
                target = self.blog_url()
            line = f"- {self.date()} [{self.title()}]({target})"
            if self.rng.random() < 0.5:
                line += f" {self.zh()}"
            lines.append(line)
            if self.rng.random() < 0.25:
                lines.append(f"  - Code: [{self.repo()}]({self.github_url()})")
            if self.rng.random() < 0.1:
                lines.append(f"  - 模型: {self.hub_url()}")
        return "\n".join(lines)

    def numbered_list(self) -> str:
        lines = [f"### {self.pick(_ZH_HEADINGS)}", ""]
        for number in range(1, self.rng.randint(6, 20)):
            target = self.blog_url() if self.rng.random() < 0.6 else self.arxiv_url(self.arxiv_id())
            lines.append(f"{number}. [{self.title()}]({target})({self.zh()})")
        return "\n".join(lines)

    def model_cards(self) -> str:
        parts = []
        for _ in range(self.rng.randint(2, 6)):
            title, repo = self.title(), self.repo()
            card = [
                f"### {title.split(':')[0]}",
                f"**Paper**: [{title}]({self.arxiv_url(self.arxiv_id())})<br>",
                f"**Github**: [{self.github_url()}]({self.github_url()})<br>",
            ]
            if self.rng.random() < 0.6:
                card.append(f"**HuggingFace**: [{repo}]({self.hub_url()})<br>")
            if self.rng.random() < 0.4:
                card.append(f"![](https://github.com/{repo}/raw/main/docs/teaser.png?raw=true)")
            card.append(f"{self.zh()} Compared with earlier work, it improves reasoning.<br>")
            parts.append("\n".join(card))
        return "\n\n---\n\n".join(parts)

    def alerts(self) -> str:
        lines = [f"## {self.name()}", ""]
        for _ in range(self.rng.randint(2, 5)):
            arxiv_id = self.arxiv_id()
            lines += [
                f"> [!{self.pick(('NOTE', 'IMPORTANT', 'TIP'))}] {self.name()}",
                f"> **代码** [Github]({self.github_url()})",
                f"> **Arxiv** [{arxiv_id}](https://arxiv.org/pdf/{arxiv_id})",
                ">",
            ]
        return "\n".join(lines)

    def table(self) -> str:
        lines = ["| | 时间 | 论文 | 简介 | 代码 |", "|---|---|---|---|---|"]
        for _ in range(self.rng.randint(5, 25)):
            date = f"{self.rng.randint(20, 25)}.{self.rng.randint(1, 12):02d}"
            code = f"[code]({self.github_url()})" if self.rng.random() < 0.5 else ""
            lines.append(
                f"| | {date} | [{self.name()}]({self.arxiv_url(self.arxiv_id())}) |"
                f" {self.zh()} | {code} |"
            )
        return "\n".join(lines)

    def html(self) -> str:
        repo = self.repo()
        if self.rng.random() < 0.5:
            return (
                '<p align="center">\n'
                f'  <a href="https://github.com/{repo}"><img src="https://github.com/{repo}'
                '/raw/main/assets/logo.png" width="200"></a>\n'
                f'  <a href="{self.arxiv_url(self.arxiv_id())}">Paper</a> |\n'
                f'  <a href="{self.hub_url()}">🤗 Models</a>\n'
                "</p>"
            )
        items = "\n".join(
            f'<li><a href="{self.arxiv_url(self.arxiv_id())}">{self.title()}</a></li>'
            for _ in range(self.rng.randint(2, 6))
        )
        return f"<details>\n<summary>{self.zh()}</summary>\n<ul>\n{items}\n</ul>\n</details>"

    def prose(self) -> str:
        arxiv_id = self.arxiv_id()
        return (
            f"{self.name()} (arXiv:{arxiv_id}) {self.zh()} See {self.github_url()} and"
            f" www.{self.name().lower()}.ai for more; discussion at {self.blog_url()} ."
        )

    def not_links(self) -> str:
        """Blocks whose URLs are no links: code fences and HTML comments."""
        if self.rng.random() < 0.5:
            return (
                "```bash\n"
                f"git clone https://github.com/{self.repo()}.git\n"
                f"wget {self.arxiv_url(self.arxiv_id())}\n"
                "```"
            )
        return f"<!-- TODO: add [{self.name()}]({self.hub_url()}) -->"

    def front_matter(self) -> str:
        return f"---\ntitle: {self.name()} reading list\nmathjax: false\ntags: [MLLM]\n---"

    def preamble(self) -> str:
        badges = " ".join(self.badge() for _ in range(self.rng.randint(2, 5)))
        return (
            f"# {self.name()} 多模态论文精选（持续更新）\n\n{badges}\n\n"
            f"多模态交流QQ群: {self.rng.randrange(10**8, 10**9)}\n\n{self.prose()}"
        )

    def document(self, target_bytes: int) -> str:
        blocks: list[str] = []
        if self.rng.random() < 0.3:
            blocks.append(self.front_matter())
        blocks.append(self.preamble())
        size = sum(len(block.encode("utf-8")) + 2 for block in blocks)
        kinds: tuple[tuple[Callable[[], str], float], ...] = (
            (self.dated_list, 0.3),
            (self.numbered_list, 0.12),
            (self.model_cards, 0.15),
            (self.alerts, 0.1),
            (self.table, 0.13),
            (self.html, 0.08),
            (self.prose, 0.07),
            (self.not_links, 0.05),
        )
        makers = [maker for maker, _ in kinds]
        weights = [weight for _, weight in kinds]
        while size < target_bytes:
            block = self.rng.choices(makers, weights)[0]()
            blocks.append(block)
            size += len(block.encode("utf-8")) + 2
        return "\n\n".join(blocks) + "\n"


# -- synthetic published snapshots (the nightly report's scale) -----------------------------

CATEGORIES = ("cs.CV", "cs.CL", "cs.LG", "cs.AI", "cs.RO", "cs.SD", "eess.AS", "cs.IR", "stat.ML")
TASKS = (
    "image-text-to-text",
    "text-generation",
    "any-to-any",
    "visual-question-answering",
    "automatic-speech-recognition",
    "text-to-image",
    "feature-extraction",
    "robotics",
)
SNAPSHOT_LISTS = 20
"""Reading lists the synthetic papers are spread over (one to three each)."""


def _filled(schema: pa.Schema, values: dict[str, Any], day: date) -> dict[str, Any]:
    """A row of `schema`: `values`, and an empty value for each other non-nullable field
    (whatever columns a later schema adds, the row stays publishable)."""
    row = dict(values)
    for field in schema:
        if field.name in row or field.nullable:
            continue
        kind = field.type
        if pa.types.is_list(kind):
            row[field.name] = []
        elif pa.types.is_string(kind):
            row[field.name] = ""
        elif pa.types.is_boolean(kind):
            row[field.name] = False
        elif pa.types.is_date(kind):
            row[field.name] = day
        else:
            row[field.name] = 0
    return row


def synthetic_snapshot(
    papers: int,
    models: int,
    day: date,
    since: date | None = None,
    earlier_share: float = 0.95,
    seed: int = 7,
) -> dict[str, pa.Table]:
    """Every table of a publishable night of `papers` papers and `models` models (the
    first ones of `synthetic_arxiv_ids` and `synthetic_model_ids`): what a night of the
    reading lists at that scale holds for the report (no links: it reads none). With
    `since`, the changes table lists as added what the night of `since`, of
    `earlier_share` as many, had not."""
    from pipeline.snapshot.schemas import TABLE_SCHEMAS

    rng = random.Random(seed)
    lists = [f"list-{i:02d}.md" for i in range(SNAPSHOT_LISTS)]
    stamp = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
    model_ids = synthetic_model_ids(models)
    paper_rows = []
    for index, arxiv_id in enumerate(synthetic_arxiv_ids(papers)):
        published = datetime(2015, 1, 1, tzinfo=UTC) + timedelta(days=rng.randrange(4300))
        documents = sorted(rng.sample(lists, rng.choice((1, 1, 1, 2, 2, 3))))
        cited_by = (
            [
                {
                    "repo_id": model_ids[rng.randrange(models)],
                    "params_total": None,
                    "size_label": None,
                    "pipeline_tag": None,
                    "downloads": None,
                }
            ]
            if models and rng.random() < 0.3
            else []
        )
        paper_rows.append(
            {
                "arxiv_id": arxiv_id,
                "title": f"Synthetic paper {index}: a multimodal model",
                "published": published,
                "primary_category": rng.choice(CATEGORIES),
                "abs_url": f"https://arxiv.org/abs/{arxiv_id}v1",
                "code_urls": [f"https://github.com/lab/repo-{index}"] if rng.random() < 0.4 else [],
                "hf_models": cited_by,
                "hf_page_status": rng.choice(("ok", "ok", "ok", "not_found")),
                "documents": documents,
                "mention_count": len(documents),
                "status": "ok" if rng.random() < 0.98 else "stale",
                "data_fetched_at": stamp,
            }
        )
    model_rows = []
    for repo_id in model_ids:
        model_rows.append(
            {
                "repo_id": repo_id,
                "params_total": int(10 ** rng.uniform(8, 12)),
                "downloads": int(10 ** rng.uniform(0, 7)),
                "pipeline_tag": rng.choice(TASKS),
                "created_at": datetime(2022, 1, 1, tzinfo=UTC)
                + timedelta(days=rng.randrange(1600)),
                "documents": [rng.choice(lists)],
                "mention_count": 1,
                "status": "ok",
                "data_fetched_at": stamp,
            }
        )
    changes = []
    if since is not None:
        for kind, ids in (
            ("paper", [r["arxiv_id"] for r in paper_rows]),
            ("model", [r["repo_id"] for r in model_rows]),
        ):
            changes += [
                {
                    "entity_type": kind,
                    "entity_id": entity,
                    "change": "added",
                    "previous_snapshot_date": since,
                }
                for entity in ids[int(len(ids) * earlier_share) :]
            ]
    rows = {"papers": paper_rows, "models": model_rows, "changes": changes}
    return {
        name: pa.Table.from_pylist(
            [_filled(schema, row, day) for row in rows.get(name, [])], schema=schema
        )
        for name, schema in TABLE_SCHEMAS.items()
    }
