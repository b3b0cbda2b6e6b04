"""Loading and saving: our Hub format, Hub repos from an offline cache, URLs, refusals."""

from __future__ import annotations

import http.server
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from pix2pix import hub, networks
from pix2pix.formats import CheckpointError
from pix2pix.hub import Pix2PixGenerator, TaskInfo, load_generator, save_generator

ROOT = Path(__file__).resolve().parents[1]


def _tiny(seed: int = 0, **network: object) -> Pix2PixGenerator:
    torch.manual_seed(seed)
    network = {"ngf": 4, **network}
    model = Pix2PixGenerator("unet_128", network, {"input_kind": "edges", "dataset": "test"})
    networks.init_weights(model.net)
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _out(model: torch.nn.Module, side: int = 128) -> torch.Tensor:
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(7)) * 2 - 1
    with torch.no_grad():
        return model.eval()(x)


# --------------------------------------------------------------------------------------------
# Our format
# --------------------------------------------------------------------------------------------


def test_round_trip_keeps_weights_config_and_task(tmp_path: Path) -> None:
    model = _tiny(norm="instance")
    model.task = TaskInfo(
        input_kind="labels",
        palette=[[0, 0, 0], [255, 0, 0]],
        class_names=["background", "facade"],
        direction="BtoA",
        train_size=128,
        patch=70,
        dataset="facades",
        notes="a note",
        metrics={"l1": 0.25},
    )
    save_generator(model, tmp_path / "m")
    assert sorted(os.listdir(tmp_path / "m")) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["architecture"] == "unet_128"
    assert config["network"] == {"ngf": 4, "norm": "instance"}
    assert config["task"]["class_names"] == ["background", "facade"]
    loaded = load_generator(tmp_path / "m")
    assert torch.equal(_out(loaded), _out(model))
    assert loaded.task == model.task
    card = (tmp_path / "m" / "README.md").read_text()
    assert "unet_128" in card and "facades" in card and "70x70" in card and "l1" in card
    assert "pipeline_tag: image-to-image" in card


def test_fp16_save_halves_the_file_and_loads_close(tmp_path: Path) -> None:
    model = _tiny()
    save_generator(model, tmp_path / "fp32")
    save_generator(model, tmp_path / "fp16", dtype=torch.float16)
    size32 = (tmp_path / "fp32" / "model.safetensors").stat().st_size
    size16 = (tmp_path / "fp16" / "model.safetensors").stat().st_size
    assert size16 < 0.55 * size32
    loaded = load_generator(tmp_path / "fp16")
    assert next(loaded.parameters()).dtype == torch.float32
    assert (_out(loaded) - _out(model)).abs().max() < 1e-2


def test_saving_again_replaces_the_model_card(tmp_path: Path) -> None:
    model = _tiny()
    save_generator(model, tmp_path)
    model.task.dataset = "second-dataset"
    save_generator(model, tmp_path)
    assert "second-dataset" in (tmp_path / "README.md").read_text()


def test_loading_our_weights_file_directly_uses_its_config(tmp_path: Path) -> None:
    model = _tiny()
    save_generator(model, tmp_path)
    loaded = load_generator(tmp_path / "model.safetensors")
    assert loaded.task.input_kind == "edges"
    assert torch.equal(_out(loaded), _out(model))


def test_device_argument_and_eval_mode(tmp_path: Path) -> None:
    save_generator(_tiny(), tmp_path)
    loaded = load_generator(str(tmp_path), device="cpu")
    assert not loaded.training
    assert next(loaded.parameters()).device.type == "cpu"


def test_wrong_architecture_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    save_generator(_tiny(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["network"]["norm"] = "instance"  # the weights have BatchNorm layers
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path)
    message = str(err.value)
    assert "model.safetensors" in message
    assert "22 unexpected keys" in message
    assert "model.model.1.model.2.weight" in message  # BatchNorm's scale
    assert "missing keys: model.model.0.bias" in message  # convs before InstanceNorm have biases


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    save_generator(_tiny(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["network"]["ngf"] = 8
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"shape mismatches: model\.model\.0\.weight"):
        load_generator(tmp_path)


def test_corrupt_config_and_weights_name_the_file(tmp_path: Path) -> None:
    save_generator(_tiny(), tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text("{not json")
    # The weights still load (architecture read off them), with a warning naming the config.
    with pytest.warns(UserWarning, match=r"a/config\.json \(not a readable JSON"):
        assert load_generator(tmp_path / "a").architecture == "unet_128"
    save_generator(_tiny(), tmp_path / "b")
    weights = tmp_path / "b" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"b/model\.safetensors.*truncated or corrupt"):
        load_generator(tmp_path / "b")


# --------------------------------------------------------------------------------------------
# Reference checkpoints and their quirks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("padding", ["reflect", "zero"])
def test_resnet_checkpoints_are_recognised(
    tmp_path: Path, norm: str, dropout: bool, padding: str
) -> None:
    net = networks.create_generator(
        "resnet_9blocks",
        ngf=4,
        norm=norm,
        dropout=dropout,
        padding=padding,
        in_channels=1,
        out_channels=2,
    )
    torch.save(net.state_dict(), tmp_path / "latest_net_G_A.pth")
    model = load_generator(tmp_path / "latest_net_G_A.pth")
    assert model.architecture == "resnet_9blocks"
    assert model.network_kwargs == {
        "in_channels": 1,
        "out_channels": 2,
        "ngf": 4,
        "norm": norm,
        "dropout": dropout,
        "padding": padding,
    }
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), net.eval()(x))


@pytest.mark.parametrize(
    "name", ["unet_256", "unet_128", "encoder_decoder", "encoder_decoder_128", "resnet_6blocks"]
)
@pytest.mark.parametrize("norm", ["batch", "instance", "none"])
def test_reference_generators_are_recognised(tmp_path: Path, name: str, norm: str) -> None:
    net = networks.create_generator(name, ngf=4, norm=norm)
    torch.save(net.state_dict(), tmp_path / "g.pth")
    model = load_generator(tmp_path / "g.pth")
    assert model.architecture == name
    assert model.network_kwargs["norm"] == norm


def test_other_depths_load_through_the_generic_entries(tmp_path: Path) -> None:
    for name, kwargs, expected in (
        ("unet", {"num_downs": 6}, "unet"),
        ("resnet", {"n_blocks": 3}, "resnet"),
    ):
        torch.save(
            networks.create_generator(name, ngf=4, **kwargs).state_dict(), tmp_path / "g.pth"
        )
        model = load_generator(tmp_path / "g.pth")
        assert model.architecture == expected
        assert all(model.network_kwargs[k] == v for k, v in kwargs.items())


def test_old_checkpoint_quirks_are_tolerated(tmp_path: Path) -> None:
    # Pre-0.4 InstanceNorm running stats (to drop), BatchNorm without num_batches_tracked.
    inst = networks.create_generator("resnet_6blocks", ngf=4, norm="instance")
    state = inst.state_dict()
    state["model.2.running_mean"] = torch.zeros(4)
    state["model.2.running_var"] = torch.ones(4)
    torch.save(state, tmp_path / "old_instance.pth")
    assert load_generator(tmp_path / "old_instance.pth").network_kwargs["norm"] == "instance"

    batch = networks.create_generator("unet_256", ngf=4).state_dict()
    batch = {k: v for k, v in batch.items() if not k.endswith("num_batches_tracked")}
    torch.save(batch, tmp_path / "old_batch.pth")
    assert load_generator(tmp_path / "old_batch.pth").architecture == "unet_256"


def test_wrapped_and_prefixed_state_dicts(tmp_path: Path) -> None:
    net = networks.create_generator("unet_128", ngf=4)
    prefixed = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": prefixed, "epoch": 3}, tmp_path / "wrapped.pth")
    assert load_generator(tmp_path / "wrapped.pth").architecture == "unet_128"


def test_reference_checkpoint_folder_picks_the_generator(tmp_path: Path) -> None:
    torch.save(
        networks.create_generator("unet_128", ngf=4).state_dict(), tmp_path / "latest_net_G.pth"
    )
    torch.save(networks.create_discriminator(70, ndf=4).state_dict(), tmp_path / "latest_net_D.pth")
    torch.save(networks.create_generator("unet_128", ngf=4).state_dict(), tmp_path / "5_net_G.pth")
    assert load_generator(tmp_path).architecture == "unet_128"


def test_unknown_layout_lists_what_was_found(tmp_path: Path) -> None:
    torch.save(networks.create_discriminator(70, ndf=4).state_dict(), tmp_path / "net_D.pth")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "net_D.pth")
    message = str(err.value)
    assert "unknown checkpoint layout" in message
    assert "model.0.weight: (4, 6, 4, 4)" in message
    assert "Recognised layouts" in message and "HugGAN" in message


def test_pickle_with_code_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model.model.0.weight": torch.zeros(1), "x": Payload()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "evil.pth")
    assert "refused to load" in str(err.value) and "evil.pth" in str(err.value)
    assert "system" in str(err.value)
    assert not marker.exists()


def test_truncated_and_garbage_files_name_the_file(tmp_path: Path) -> None:
    torch.save(networks.create_generator("unet_128", ngf=4).state_dict(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: the file is truncated or corrupt"):
        load_generator(tmp_path / "cut.pth")
    (tmp_path / "noise.bin").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=r"noise\.bin"):
        load_generator(tmp_path / "noise.bin")
    # Garbage reaches the unpickler in many ways (a pickle header then noise, noise alone); each
    # one must end in the same error naming the file, never in IndexError or TypeError.
    rng = np.random.default_rng(0)
    for i in range(300):
        noise = rng.integers(0, 256, int(rng.integers(1, 600)), dtype=np.uint8).tobytes()
        head = (b"", b"\x80\x02", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02")[i % 3]
        (tmp_path / "garbage.pth").write_bytes(head + noise)
        with pytest.raises(CheckpointError, match=r"garbage\.pth"):
            load_generator(tmp_path / "garbage.pth")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"empty\.safetensors"):
        load_generator(tmp_path / "empty.safetensors")
    (tmp_path / "weights.onnx").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"unsupported weight file type '\.onnx'"):
        load_generator(tmp_path / "weights.onnx")


def test_missing_sources_say_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not an existing file or folder"):
        load_generator(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        load_generator("nobody/no-such-model")


# --------------------------------------------------------------------------------------------
# Hub repos from a cache the test builds, with HF_HUB_OFFLINE=1
# --------------------------------------------------------------------------------------------


def _cache_snapshot(cache: Path, repo: str, commit: str, refs: list[str]) -> Path:
    folder = cache / f"models--{repo.replace('/', '--')}"
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (folder / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (folder / "refs" / ref).write_text(commit)
    return snapshot


def test_hub_repo_ids_load_from_an_offline_cache(tmp_path: Path) -> None:
    cache = tmp_path / "hub"
    main_commit, tag_commit = "a" * 40, "b" * 40
    save_generator(
        _tiny(seed=1), _cache_snapshot(cache, "someone/edges2cats", main_commit, ["main"])
    )
    save_generator(_tiny(seed=2), _cache_snapshot(cache, "someone/edges2cats", tag_commit, ["v1"]))
    huggan = networks.create_generator("huggan_unet").state_dict()
    torch.save(
        huggan,
        _cache_snapshot(cache, "huggan/pix2pix-edge2shoes", "c" * 40, ["main"])
        / "pytorch_model.bin",
    )
    expected = {name: _out(_tiny(seed=s)) for name, s in (("main", 1), ("v1", 2))}
    torch.save(expected, tmp_path / "expected.pt")

    script = f"""
import torch
from pix2pix import load_generator
x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(7)) * 2 - 1
expected = torch.load({str(tmp_path / "expected.pt")!r}, weights_only=True)
def out(m):
    with torch.no_grad():
        return m(x)
assert torch.equal(out(load_generator("someone/edges2cats")), expected["main"])
assert torch.equal(out(load_generator("someone/edges2cats@v1")), expected["v1"])
assert torch.equal(out(load_generator("someone/edges2cats", revision="v1")), expected["v1"])
assert torch.equal(out(load_generator("someone/edges2cats@{main_commit}")), expected["main"])
assert load_generator("huggan/pix2pix-edge2shoes").architecture == "huggan_unet"
try:
    load_generator("someone/edges2cats@v2")
except FileNotFoundError as e:
    assert "v2" in str(e), e
else:
    raise AssertionError("an uncached revision loaded")
print("hub-ok")
"""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(tmp_path / "home"),
    }
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "hub-ok" in done.stdout


# --------------------------------------------------------------------------------------------
# URLs, served by a local HTTP server
# --------------------------------------------------------------------------------------------


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root, requests
    server.shutdown()
    server.server_close()


def test_url_download_is_cached(http_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, root, requests = http_root
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    net = networks.create_generator("unet_128", ngf=4)
    torch.save(net.state_dict(), root / "facades_label2photo.pth")
    url = f"{base}/models-pytorch/../facades_label2photo.pth"
    model = load_generator(url)
    assert model.architecture == "unet_128"
    assert model.task.source == url
    assert len(requests) == 1
    (root / "facades_label2photo.pth").unlink()  # the second load must not need the server
    assert load_generator(url).architecture == "unet_128"
    assert len(requests) == 1
    assert not list((tmp_path / "cache" / "urls").glob(".*.part"))


def test_url_errors_are_clear(http_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base, _, _ = http_root
    monkeypatch.setenv("PIX2PIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ConnectionError, match=r"could not download .*missing\.pth"):
        load_generator(f"{base}/missing.pth")
    assert not list((tmp_path / "cache" / "urls").iterdir())  # nothing half-written is kept
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="HF_HUB_OFFLINE"):
        load_generator(f"{base}/other.pth")
    with pytest.raises(ValueError, match="expected an http"):
        hub.download_url("ftp://example.com/x.pth")


# --------------------------------------------------------------------------------------------
# Files that are not checkpoints
# --------------------------------------------------------------------------------------------

HTML_PAGE = (
    b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1></body></html>\n"
)


def _not_checkpoints(folder: Path) -> dict[str, tuple[bytes, str]]:
    """file name -> (content, what the error must call it)."""
    import gzip
    import io
    import zipfile

    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("facades/readme.txt", "the model is in another file")
        archive.writestr("facades/latest_net_G.onnx", b"\x08\x07")
    text_file = b"model weights moved to a new server, see the project page\n"
    return {
        "latest_net_G.pth": (HTML_PAGE, "an HTML page"),
        "error.bin": (b'{"error": "Entry not found", "status": 404}', "JSON text"),
        "empty.pth": (b"", "an empty file"),
        "archive.pth": (zipped.getvalue(), r"a zip archive of other files \(facades/readme.txt"),
        "packed.pth": (gzip.compress(b"some other data" * 100), "a gzip-compressed file"),
        "notes.pt": (text_file, "a text file"),
        "xml.pth": (b"<?xml version='1.0'?><Error><Code>NoSuchKey</Code></Error>", "XML"),
    }


def test_files_that_are_not_checkpoints_say_what_they_are(tmp_path: Path) -> None:
    for name, (content, what) in _not_checkpoints(tmp_path).items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError) as err:
            load_generator(tmp_path / name)
        message = str(err.value)
        assert name in message and "is not a checkpoint" in message, message
        assert re.search(what, message), (what, message)
        assert "Download it again" in message
        assert "arbitrary code" not in message  # that message is for pickles that carry code


def test_truncated_checkpoint_is_named_as_such(tmp_path: Path) -> None:
    torch.save(networks.create_generator("unet_128", ngf=4).state_dict(), tmp_path / "full.pth")
    data = (tmp_path / "full.pth").read_bytes()
    for cut in (len(data) // 3, 200, 30):
        (tmp_path / "cut.pth").write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=r"cut\.pth.*truncated or corrupt") as err:
            load_generator(tmp_path / "cut.pth")
        assert "arbitrary code" not in str(err.value) and "Download it again" in str(err.value)


def test_format_is_read_off_the_content_not_the_name(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    net = networks.create_generator("unet_128", ngf=4)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, tmp_path / "g.pth")
    assert load_generator(tmp_path / "g.pth").architecture == "unet_128"


def test_a_download_that_is_not_a_checkpoint_leaves_the_cache(
    http_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root, requests = http_root
    cache = tmp_path / "cache"
    monkeypatch.setenv("PIX2PIX_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    url = f"{base}/facades_label2photo.pth"
    (root / "facades_label2photo.pth").write_bytes(HTML_PAGE)  # the model server's outage page
    with pytest.raises(CheckpointError, match=r"removed from the cache.*an HTML page"):
        load_generator(url)
    assert not [p for p in (cache / "urls").iterdir()]
    # Once the server is back, the same URL downloads again and loads.
    torch.save(networks.create_generator("unet_128", ngf=4).state_dict(), root / url.split("/")[-1])
    assert load_generator(url).architecture == "unet_128"
    assert len(requests) == 2


# --------------------------------------------------------------------------------------------
# Checkpoints saved by other tools, with a config.json that is not ours
# --------------------------------------------------------------------------------------------


def test_huggan_saved_with_todays_huggingface_hub_loads(tmp_path: Path) -> None:
    from huggingface_hub import PyTorchModelHubMixin

    class GeneratorUNet(networks.HugGANUNet, PyTorchModelHubMixin):
        """The HugGAN community class, as its code defines it today (keys down1..., final)."""

    torch.manual_seed(0)
    original = GeneratorUNet(in_channels=3, out_channels=3).eval()
    original.save_pretrained(tmp_path / "huggan")
    config = json.loads((tmp_path / "huggan" / "config.json").read_text())
    assert config == {"in_channels": 3, "out_channels": 3}
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    for source in (tmp_path / "huggan", tmp_path / "huggan" / "model.safetensors"):
        loaded = load_generator(source)
        assert loaded.architecture == "huggan_unet"
        with torch.no_grad():
            assert torch.equal(loaded(x), original(x))
    # The same folder with the 2022 pickle beside the safetensors: the safetensors one is taken.
    torch.save(original.state_dict(), tmp_path / "huggan" / "pytorch_model.bin")
    assert load_generator(tmp_path / "huggan").architecture == "huggan_unet"


def test_other_configs_fall_back_to_the_weights_and_say_what_was_tried(tmp_path: Path) -> None:
    # A timm-style config: an 'architecture' field that is not one of ours.
    folder = tmp_path / "timmish"
    folder.mkdir()
    torch.save(networks.create_generator("resnet_6blocks", ngf=4).state_dict(), folder / "g.pth")
    (folder / "config.json").write_text(json.dumps({"architecture": "resnet50", "num_classes": 9}))
    assert load_generator(folder).architecture == "resnet_6blocks"
    assert load_generator(folder / "g.pth").architecture == "resnet_6blocks"
    # Neither the config nor the weights: the error names both attempts.
    other = tmp_path / "other"
    other.mkdir()
    torch.save(networks.create_discriminator(70, ndf=4).state_dict(), other / "model.bin")
    (other / "config.json").write_text(json.dumps({"in_channels": 6, "out_channels": 1}))
    with pytest.raises(CheckpointError) as err:
        load_generator(other)
    message = str(err.value)
    assert "Tried (1)" in message and "no 'architecture' field (its keys: in_channels" in message
    assert "(2) reading the architecture off the weights in model.bin" in message
    assert "unknown checkpoint layout" in message
