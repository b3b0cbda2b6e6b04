"""requirements.txt installs what the library, the app and training import at module level: the
README's app command installs only it, and pix2pix-train then has to start (CI installs the dev
requirements too, so a missing runtime package would pass every other test)."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Import name -> the requirement that installs it (a dependency of one, for starlette).
DISTRIBUTION = {
    "PIL": "pillow",
    "cv2": "opencv-python-headless",
    "huggingface_hub": "huggingface-hub",
    "starlette": "gradio",
}


def module_level_imports(files: list[Path]) -> dict[str, list[str]]:
    """Third-party top-level modules imported at module level (not inside functions, where the
    project imports optional packages), with the files importing them."""
    found: dict[str, list[str]] = {}
    for path in files:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ("pix2pix", "train"):
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def requirements() -> set[str]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    names = (re.split(r"[<>=!~;\[ ]", line.strip())[0] for line in lines)
    return {n.lower() for n in names if n and not n.startswith("#")}


def test_requirements_cover_the_library_the_app_and_training() -> None:
    files = [ROOT / "app.py", *(ROOT / "pix2pix").rglob("*.py"), *(ROOT / "train").rglob("*.py")]
    imports = module_level_imports(files)
    assert {"torch", "numpy", "scipy"} <= set(imports)  # the scan sees the imports
    wanted = requirements()
    missing = {
        module: where
        for module, where in imports.items()
        if DISTRIBUTION.get(module, module).lower().replace("_", "-") not in wanted
    }
    assert not missing, f"imported at module level, not in requirements.txt: {missing}"


def test_a_test_run_leaves_no_cache_behind(tmp_path: Path) -> None:
    # tests/conftest.py points every cache into a temporary folder of its own; a run removes it.
    import os
    import subprocess

    env = {**os.environ, "TMPDIR": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_requirements.py::test_requirements_cover_the_library_the_app_and_training"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert not list(tmp_path.glob("pix2pix-test-cache-*"))
