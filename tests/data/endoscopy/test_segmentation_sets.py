"""Segmentation sets are not classification layouts (issue 25, item 4): the real Kvasir-SEG images and
masks laid out as Kvasir-SEG (images/ + masks/), PraNet (TrainDataset/image + mask) and CVC-ClinicDB
(Original/ + Ground Truth/) are refused by the endoscopy readers and commands with one line; a class
folder of binary-looking images without name pairs is still a class."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from PIL import Image
from typer.testing import CliRunner

from medmodal.cli import app
from medmodal.data.endoscopy.layouts import detect_layout, read_samples
from medmodal.data.segmentation_sets import find_segmentation_set, segmentation_set_message
from medmodal.errors import LayoutError
from tests.data.endoscopy.conftest import KVASIR_SEG

requires_kvasir_seg = pytest.mark.skipif(not (KVASIR_SEG / "Kvasir-SEG" / "masks").is_dir(),
                                         reason=f"real Kvasir-SEG images not found at {KVASIR_SEG}")
pytestmark = requires_kvasir_seg
runner = CliRunner()


def real_pairs():
    images = sorted((KVASIR_SEG / "Kvasir-SEG" / "images").glob("*.jpg"))
    return [(p, KVASIR_SEG / "Kvasir-SEG" / "masks" / p.name) for p in images]


def lay_out(root, image_dir, mask_dir, name=lambda k, p: p.name, fmt=None):
    """The real pairs under ``root/image_dir`` and ``root/mask_dir`` (renamed / converted on the way)."""
    for k, (image, mask) in enumerate(real_pairs()):
        for src, folder in ((image, image_dir), (mask, mask_dir)):
            out = root / folder / name(k, src)
            out.parent.mkdir(parents=True, exist_ok=True)
            if fmt is None:
                shutil.copy(src, out)
            else:
                Image.open(src).save(out, format=fmt)
    return root


@pytest.fixture
def layouts(tmp_path):
    kvasir = lay_out(tmp_path / "kvasir-seg", "Kvasir-SEG/images", "Kvasir-SEG/masks")
    pranet = lay_out(tmp_path / "pranet", "TrainDataset/image", "TrainDataset/mask",
                     name=lambda k, p: p.stem + ".png", fmt="PNG")
    cvc = lay_out(tmp_path / "CVC-ClinicDB", "Original", "Ground Truth", name=lambda k, p: f"{k + 1}.tif", fmt="TIFF")
    return {"kvasir": (kvasir, "Kvasir-SEG/images", "Kvasir-SEG/masks", "Kvasir-SEG / PraNet layout"),
            "pranet": (pranet, "TrainDataset/image", "TrainDataset/mask", "PraNet layout"),
            "cvc": (cvc, "Original", "Ground Truth", "CVC-ClinicDB layout")}


def expected_line(root, images, masks, kind, binary=""):
    hint = (" (--layout kvasir-seg reads its images/ alone as one 'polyps' class)" if kind.startswith("Kvasir")
            else f" (to predict on its images alone, unlabelled, give {root / images} itself)")
    return (f"{root}: a segmentation set ({images}/ with {masks}/ paired by file name, 5 of 5 masks{binary}: {kind}), "
            f"not a classification layout; mask folders are not classes{hint}")


@pytest.mark.parametrize("name", ["kvasir", "pranet", "cvc"])
def test_segmentation_layouts_are_refused(layouts, name):
    root, images, masks, kind = layouts[name]
    found = find_segmentation_set(root)
    assert (found.images, found.masks, found.by, found.kind) == (root / images, root / masks, "name", kind)
    line = expected_line(root, images, masks, kind)
    for layout in ("auto", "kvasir"):   # auto, and the class-folder reader asked for by name
        with pytest.raises(LayoutError) as err:
            read_samples(root, layout)
        assert str(err.value) == line
    with pytest.raises(LayoutError, match="a segmentation set"):
        detect_layout(root)


@pytest.mark.parametrize("name", ["kvasir", "pranet", "cvc"])
def test_predict_and_summary_refuse_with_one_line(layouts, name, tmp_path):
    import torch  # noqa: F401  (the model below)
    from medmodal.bundle import ENDOSCOPY_CLASSIFIER, save_bundle
    from medmodal.models import create_model

    model = create_model("mics", num_classes=2, arch="vit_tiny_patch16_224", image_size=32,
                         encoder_kwargs={"patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2}, fusion_depth=1)
    run = tmp_path / "model"
    save_bundle(run, model, {"model": "mics", "config": dataclasses.asdict(model.config), "classes": ["polyps", "x"]},
                format=ENDOSCOPY_CLASSIFIER)
    root, images, masks, kind = layouts[name]
    out = tmp_path / "p.csv"
    for args in (["endoscopy", "predict", "-i", str(root), "-o", str(out), "-m", str(run)],
                 ["endoscopy", "summary", str(root)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.output.strip() == "error: " + expected_line(root, images, masks, kind), result.output
    assert not out.exists()


def test_mask_folder_found_by_content(tmp_path):
    """Masks in a folder whose name says nothing ("outlines"), paired by name with the images: refused,
    the line saying the masks are binary images."""
    root = lay_out(tmp_path / "set", "frames", "outlines")
    found = find_segmentation_set(root)
    assert (found.images.name, found.masks.name, found.by) == ("frames", "outlines", "content")
    with pytest.raises(LayoutError) as err:
        read_samples(root)
    assert str(err.value) == expected_line(root, "frames", "outlines", "image and mask folders",
                                           ", outlines/ holds binary images")


def test_binary_looking_class_folders_without_name_pairs_are_classes(tmp_path):
    """A class of binary-looking pictures (the real masks, other names) beside a class of photographs:
    classes, not a segmentation set; a folder named ``labels`` without partners is a class too."""
    root = tmp_path / "classes"
    for k, (image, mask) in enumerate(real_pairs()):
        for folder, src, stem in (("polyps", image, f"polyp_{k}"), ("stencils", mask, f"stencil_{k}"),
                                  ("labels", mask, f"label_{k}")):
            (root / folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(src, root / folder / f"{stem}.jpg")
    assert find_segmentation_set(root) is None
    samples = read_samples(root)
    assert detect_layout(root) == "kvasir"
    assert sorted({s.label for s in samples}) == ["labels", "polyps", "stencils"] and len(samples) == 15
    # the same files paired by name (the photographs' names given to the stencils): a segmentation set
    for k in range(5):
        (root / "stencils" / f"stencil_{k}.jpg").rename(root / "stencils" / f"polyp_{k}.jpg")
    shutil.rmtree(root / "labels")
    found = find_segmentation_set(root)
    assert (found.images.name, found.masks.name, found.by) == ("polyps", "stencils", "content")
    assert segmentation_set_message(found).startswith(f"{root}: a segmentation set (polyps/ with stencils/ paired")


def test_finetune_refuses_a_segmentation_set_and_writes_nothing(layouts, tmp_path):
    root, images, masks, kind = layouts["pranet"]
    out = tmp_path / "run"
    result = runner.invoke(app, ["endoscopy", "finetune", "--data", str(root), "--out", str(out),
                                 "--preset", "mics_finetune_demo_cpu"])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == "error: " + expected_line(root, images, masks, kind), result.output
    assert not out.exists()


def test_a_class_tree_holding_a_segmentation_set_reads_its_classes(tmp_path, caplog):
    """HyperKvasir as downloaded: labelled class folders beside ``segmented-images/images + masks``: the
    classes are read, the pair's folders are skipped with a warning (not classes 'images' / 'masks')."""
    import logging

    root = tmp_path / "hyper-kvasir"
    lay_out(root / "segmented-images", "images", "masks")
    for k, (image, _) in enumerate(real_pairs()):
        cls = "polyps" if k < 3 else "cecum"
        (root / "labeled-images" / "lower-gi-tract" / cls).mkdir(parents=True, exist_ok=True)
        shutil.copy(image, root / "labeled-images" / "lower-gi-tract" / cls / f"x{k}.jpg")
    assert find_segmentation_set(root) is None
    with caplog.at_level(logging.WARNING, logger="medmodal.data.endoscopy"):
        samples = read_samples(root)
    assert sorted(s.label for s in samples) == ["cecum", "cecum", "polyps", "polyps", "polyps"]
    assert "2 item(s) ignored (a segmentation set's images or masks" in caplog.text
    # the segmented-images folder alone is a segmentation set
    with pytest.raises(LayoutError, match="segmented-images: a segmentation set"):
        read_samples(root / "segmented-images")
