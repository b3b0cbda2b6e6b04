"""The benchmark rewrites only its own machine's section of docs/PERFORMANCE.md."""

from __future__ import annotations

from pathlib import Path

from bench.benchmark import HEADER, splice_section

ROOT = Path(__file__).resolve().parents[1]


def _section(kind: str, text: str) -> str:
    return f"<!-- machine: {kind} -->\n## {kind}\n\n{text}\n<!-- /machine: {kind} -->"


def test_only_this_machines_section_changes() -> None:
    old = (
        "# Performance\n\nintro\n\n"
        + _section("AMD", "old amd figures")
        + "\n\n"
        + _section("Intel", "intel figures")
        + "\n\n## In the visitor's browser\n\nbrowser figures\n\n## Attempts log\n\n1. tried\n"
    )
    new = splice_section(old, "AMD", _section("AMD", "new amd figures"))
    assert "new amd figures" in new and "old amd figures" not in new
    assert new.replace("new amd figures", "old amd figures") == old
    added = splice_section(old, "ARM", _section("ARM", "arm figures"))
    assert added.index("arm figures") < added.index("## Attempts log")
    assert "browser figures" in added and "intel figures" in added and "1. tried" in added
    assert splice_section("", "AMD", "s").startswith(HEADER)


def test_the_real_file_keeps_its_other_sections() -> None:
    old = (ROOT / "docs" / "PERFORMANCE.md").read_text()
    new = splice_section(old, "AMD EPYC, AVX2 only, 2 vCPU", _section("x", "y"))
    for kept in ("## In the visitor's browser", "## Attempts log", "## Intel Xeon"):
        assert kept in new
