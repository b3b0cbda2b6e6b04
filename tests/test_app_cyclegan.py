"""CycleGAN models in the app, through gradio_client against a real server: the model picker
offers each direction of a CycleGAN folder, each runs its own generator, and the Compare tab shows
x, G(x) and the cycle back F(G(x)) beside a pix2pix model of the same task.

The models are tiny and random (ResNet-6, ngf 4), saved by the library as a trained CycleGAN run
saves them (``save_generator(G, folder, reverse=F)``), plus a reference run folder
(``latest_net_G_A.pth`` / ``latest_net_G_B.pth``) picked by direction in the registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from PIL import Image

from bench.serving import Server, serve
from pix2pix import networks
from pix2pix.hub import Pix2PixGenerator, load_generator, save_generator
from pix2pix.inference import Translator
from tests.app_fixtures import CLASSES, PALETTE, label_image, tiny_model

SIZE = 128


def tiny_resnet(seed: int, task: dict) -> Pix2PixGenerator:
    torch.manual_seed(seed)
    network = {"ngf": 4, "norm": "instance", "dropout": False, "n_blocks": 6}
    model = Pix2PixGenerator("resnet", network, {"train_size": SIZE, **task})
    networks.init_weights(model.net)
    return model.eval()


REGISTRY = """
[[model]]
id = "cycle-label2photo"
name = "CycleGAN labels -> photo"
path = "models/cycle"
direction = "AtoB"
group = "paired vs unpaired"
variant = "CycleGAN (unpaired)"

[[model]]
id = "cycle-photo2label"
name = "CycleGAN photo -> labels"
path = "models/cycle"
direction = "BtoA"

[[model]]
id = "pix2pix-label2photo"
name = "pix2pix labels -> photo"
path = "models/pix2pix"
group = "paired vs unpaired"
variant = "pix2pix (paired)"

[[model]]
id = "reference-run-back"
name = "A reference run folder, B -> A"
path = "models/reference_run"
direction = "BtoA"
input = "photo"
train_size = 128

[[model]]
id = "one-generator-btoa"
name = "One generator trained B -> A (the direction only describes it)"
path = "models/pix2pix"
direction = "BtoA"
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cycle-app")
    labels = {"palette": PALETTE, "class_names": CLASSES, "domains": ["labels", "photo"]}
    forward = tiny_resnet(0, {"method": "cyclegan", "direction": "AtoB", "input_kind": "labels",
                              "patch": 70, **labels})  # fmt: skip
    back = tiny_resnet(1, {"method": "cyclegan", "direction": "BtoA", "input_kind": "photo",
                           "patch": 70, **labels})  # fmt: skip
    save_generator(forward, root / "models" / "cycle", reverse=back)
    save_generator(tiny_model("labels", seed=5, patch=70), root / "models" / "pix2pix")
    run = root / "models" / "reference_run"
    run.mkdir(parents=True)
    torch.save(tiny_resnet(2, {}).net.state_dict(), run / "latest_net_G_A.pth")
    torch.save(tiny_resnet(3, {}).net.state_dict(), run / "latest_net_G_B.pth")
    (root / "registry.toml").write_text(REGISTRY, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[Server]:
    # browser_mode: the ONNX exports the canvas runs in a visitor's browser are served too.
    with serve(folder / "registry.toml", browser_mode=True) as running:
        assert running.app.store.wait(120), "background loading did not finish"
        yield running  # serve() lets the ONNX prefetch end before the next module


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    return Client(server.url, verbose=False)


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("inputs") / "labels.png"
    label_image(SIZE).save(path)
    return str(path)


def pixels(image: Image.Image | str) -> np.ndarray:
    img = Image.open(image) if isinstance(image, str) else image
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def close(a: np.ndarray, b: np.ndarray) -> bool:
    """The same generator's output but for a backend's rounding (the app may run bf16 where the
    CPU computes it natively): PSNR over 30 dB. Two different random generators give about 10."""
    if a.shape != b.shape:
        return False
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return mse == 0 or 10 * np.log10(255**2 / mse) > 30


def direct(source: Path, direction: str | None, image: Image.Image) -> Image.Image:
    """What the library gives outside the app: load the generator, run it in test mode."""
    model = load_generator(source, direction=direction)
    return Translator(model, device="cpu", backend="torch")([image])[0]


def test_the_picker_offers_each_direction_and_each_runs_its_own_generator(
    client: Client, folder: Path, labels_file: str
) -> None:
    models = {m["id"]: m for m in client.predict(api_name="/models")}
    for model_id in ("cycle-label2photo", "cycle-photo2label", "reference-run-back"):
        assert models[model_id]["status"] == "ready", models[model_id]
    source = Image.open(labels_file).convert("RGB")
    there = client.predict(handle_file(labels_file), "cycle-label2photo", "", api_name="/translate")
    back = client.predict(handle_file(labels_file), "cycle-photo2label", "", api_name="/translate")
    cycle = folder / "models" / "cycle"
    assert close(pixels(there), pixels(direct(cycle, "AtoB", source)))
    assert close(pixels(back), pixels(direct(cycle, "BtoA", source)))
    assert not close(pixels(there), pixels(back))
    # The reference run folder's G_B for B -> A, not its G_A.
    ref = client.predict(handle_file(labels_file), "reference-run-back", "", api_name="/translate")
    run = folder / "models" / "reference_run"
    assert close(pixels(ref), pixels(direct(run, "BtoA", source)))
    assert not close(pixels(ref), pixels(direct(run, "AtoB", source)))


def test_a_single_generators_registry_direction_only_describes_it(
    server: Server, client: Client, labels_file: str
) -> None:
    served = server.app.store.get("one-generator-btoa")
    assert served.task.direction == "BtoA" and served.reverse is None
    same = client.predict(handle_file(labels_file), "one-generator-btoa", "", api_name="/translate")
    other = client.predict(
        handle_file(labels_file), "pix2pix-label2photo", "", api_name="/translate"
    )
    assert close(pixels(same), pixels(other))


def test_compare_shows_x_then_g_of_x_and_the_cycle_back_beside_pix2pix(
    client: Client, folder: Path, labels_file: str
) -> None:
    gallery = client.predict(handle_file(labels_file), "paired vs unpaired", api_name="/compare")
    captions = [item["caption"] for item in gallery]
    assert captions == [
        "x: the input",
        "G(x): CycleGAN (unpaired) · 70×70 receptive field",
        "F(G(x)): the cycle back to x",
        "pix2pix (paired) · 70×70 receptive field",
    ]
    x, g_x, f_g_x, paired = (pixels(item["image"]) for item in gallery)
    source = Image.open(labels_file).convert("RGB")
    assert close(x, pixels(source))
    cycle = folder / "models" / "cycle"
    expected_g = direct(cycle, "AtoB", source)
    assert close(g_x, pixels(expected_g))
    # F runs on G's own output, as the cycle loss does.
    assert close(f_g_x, pixels(direct(cycle, "BtoA", expected_g)))
    assert close(paired, pixels(direct(folder / "models" / "pix2pix", None, source)))


def test_a_model_without_a_reverse_has_no_cycle(server: Server, labels_file: str) -> None:
    from pix2pix.app.service import ModelError

    source = Image.open(labels_file).convert("RGB")
    with pytest.raises(ModelError, match=r"holds one generator.*cycle-label2photo"):
        server.app.store.cycle("pix2pix-label2photo", source)
    g_x, f_g_x = server.app.store.cycle("cycle-photo2label", source)
    assert g_x.size == f_g_x.size == source.size


def test_each_direction_is_exported_for_the_browser_with_its_own_weights(
    server: Server, folder: Path, labels_file: str
) -> None:
    import httpx
    import onnxruntime as ort

    from pix2pix.export import read_metadata

    source = Image.open(labels_file).convert("RGB")
    x = np.asarray(source, dtype=np.float32).transpose(2, 0, 1)[None] / 127.5 - 1
    got = {}
    for model_id, direction in (("cycle-label2photo", "AtoB"), ("cycle-photo2label", "BtoA")):
        reply = httpx.get(f"{server.url}p2p/models/{model_id}.onnx", timeout=120)
        assert reply.status_code == 200, reply.text[:300]
        path = folder / f"{model_id}.onnx"
        path.write_bytes(reply.content)
        meta = read_metadata(path)
        assert meta["architecture"] == "resnet" and meta["direction"] == direction
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        y = session.run(None, {"input": x})[0][0]
        got[direction] = np.clip((y.transpose(1, 2, 0) + 1) * 127.5, 0, 255).round()
        expected = pixels(direct(folder / "models" / "cycle", direction, source))
        assert close(got[direction].astype(np.int16), expected), model_id
    assert not close(got["AtoB"].astype(np.int16), got["BtoA"].astype(np.int16))
