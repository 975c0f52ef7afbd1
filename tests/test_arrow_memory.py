"""Arrow's allocator in a night's process (`pipeline.arrow_memory`): what runs a night
switches the process to the C library's allocator, whose spare memory `release_unused`
gives back; importing the package does not. Each case runs in a fresh interpreter,
since the pool is the process's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.cli import EXIT_OK, EXIT_PARTIAL
from pipeline.snapshot.read import load


def _python(code: str, tmp_path: Path) -> dict[str, object]:
    """Run `code` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    parsed: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed


def test_importing_the_package_leaves_the_allocator_alone(tmp_path: Path) -> None:
    seen = _python(
        """
        import json, pyarrow as pa
        before = pa.default_memory_pool().backend_name
        import pipeline.night, pipeline.snapshot.read, pipeline.workers
        print(json.dumps({"before": before, "after": pa.default_memory_pool().backend_name}))
        """,
        tmp_path,
    )
    assert seen["before"] != "system"  # the wheels' default, or the test is moot
    assert seen["after"] == seen["before"]


def test_use_system_allocator_switches_the_pool(tmp_path: Path) -> None:
    seen = _python(
        """
        import json, pyarrow as pa, pyarrow.compute as pc
        from pipeline.arrow_memory import use_system_allocator
        old = pa.array(range(1000))
        use_system_allocator()
        use_system_allocator()
        new = pa.array(range(1000))
        print(json.dumps({
            "pool": pa.default_memory_pool().backend_name,
            "sum": pc.sum(old).as_py() + pc.sum(new).as_py(),
        }))
        """,
        tmp_path,
    )
    # Buffers made before the switch stay valid beside the new pool's.
    assert seen == {"pool": "system", "sum": 2 * sum(range(1000))}


def test_release_unused_gives_freed_memory_back(tmp_path: Path) -> None:
    # 200 MB in small buffers, all but one freed: without `malloc_trim` the C library
    # keeps the freed heap below the live buffer.
    seen = _python(
        """
        import json, pyarrow as pa
        from pipeline.arrow_memory import release_unused, use_system_allocator
        def rss_mb():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) / 1024
        use_system_allocator()
        transient = [pa.allocate_buffer(1000) for _ in range(200_000)]
        kept = pa.allocate_buffer(1000)
        del transient
        freed = rss_mb()
        release_unused()
        print(json.dumps({"freed": freed, "released": rss_mb(), "kept": kept.size}))
        """,
        tmp_path,
    )
    assert float(seen["freed"]) - float(seen["released"]) > 150  # type: ignore[arg-type]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_night_and_its_workers_use_the_system_allocator(tmp_path: Path, workers: int) -> None:
    (tmp_path / "list.md").write_text(
        "# Tools\n\n- [a tool](https://example.org/tool)\n- [a page](https://example.org/x)\n",
        "utf-8",
    )
    # Imported by the worker, which starts from the forkserver with this folder on its path.
    (tmp_path / "probe.py").write_text(
        "import pyarrow as pa\n\n"
        "def pool_name():\n    return pa.default_memory_pool().backend_name\n",
        "utf-8",
    )
    seen = _python(
        f"""
        import json, pyarrow as pa
        from pipeline.cli import main
        from pipeline.workers import process_pool
        import probe
        before = probe.pool_name()
        code = main(["run", "list.md", "--offline", "--out", "enriched", "--raw", "raw",
                     "--workers", "{workers}"])
        with process_pool(1) as pool:
            worker = pool.submit(probe.pool_name).result()
        print(json.dumps({{"code": code, "before": before, "after": probe.pool_name(),
                          "worker": worker}}))
        """,
        tmp_path,
    )
    assert seen["code"] in (EXIT_OK, EXIT_PARTIAL)  # published; offline, nothing was asked
    assert load("links", tmp_path / "enriched").shape[0] == 2
    assert seen["before"] != "system"
    assert (seen["after"], seen["worker"]) == ("system", "system")
