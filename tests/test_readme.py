"""The README's Python example runs as written (from a folder holding the repo's models)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example_runs(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Use it from Python") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    for name in ("checkpoints", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.png").is_file()


def test_front_matter_preloads_only_hub_models_of_models_toml_and_says_so() -> None:
    """Each repo the Space front matter preloads is a Hub model of models.toml, and the README's
    text says that it is preloaded (the bundled-models table does not list it)."""
    from huggingface_hub import metadata_load

    from pix2pix.app.registry import load_registry

    front = metadata_load(ROOT / "README.md")
    preloaded = {line.split()[0] for line in front["preload_from_hub"]}
    hub = {e.source for e in load_registry(ROOT / "models.toml").models if e.source_kind == "hub"}
    assert preloaded and preloaded <= hub, preloaded - hub
    assert set(front["models"]) == preloaded
    body = (ROOT / "README.md").read_text().split("\n---\n", 1)[1]
    section = body[body.index("**Not bundled, but preloaded on a Space**") :]
    for repo in preloaded:
        assert f"`{repo}`" in section, repo


def test_front_matter_suggests_hardware_a_free_account_can_run() -> None:
    """Gradio Spaces on CPU need a paid plan; a free account can run this app on ZeroGPU only
    (`zero-a10g`), so that is the suggestion; the Hosting section names every choice and where
    the canvas gets threads (a Space's own *.hf.space address, not its framed page)."""
    from huggingface_hub import SpaceHardware, metadata_load

    front = metadata_load(ROOT / "README.md")
    assert front["sdk"] == "gradio"
    assert front.get("suggested_hardware") in (None, SpaceHardware.ZERO_A10G.value), front
    body = (ROOT / "README.md").read_text().split("\n---\n", 1)[1]
    hosting = body[body.index("## Hosting") : body.index("### Call it from Python")]
    for words in (
        "static Space",
        "| free |",
        "ZeroGPU",
        "CPU basic",
        "paid plan",
        "`suggested_hardware: zero-a10g`",
        "https://OWNER-NAME.hf.space",
        "https://huggingface.co/spaces/OWNER/NAME",
        "cross-origin-resource-policy",
    ):
        assert words in hosting, words
