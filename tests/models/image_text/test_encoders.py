"""Image / text encoders: token order, input sizes, local weight files, export formats, tokenizer."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision

from medmodal.models.image_text.encoders import ImageEncoder, TextEncoder, load_weight_file
from tests.models.image_text.conftest import TINY_TEXT


@pytest.mark.parametrize("size", [64, 96])
def test_resnet_tokens_are_spatial_row_major(size):
    torch.manual_seed(0)
    enc = ImageEncoder("resnet18", image_size=size).eval()
    images = torch.randn(2, 3, size, size)
    with torch.no_grad():
        out = enc(images)
        fmap = enc.backbone.forward_features(images)
    h, w = out.grid
    assert (h, w) == (size // 32, size // 32) and enc.kind == "cnn"
    assert out.global_features.shape == (2, 512) and out.local_features.shape == (2, h * w, 512)
    for i in range(h):
        for j in range(w):  # token i*w + j is the feature-map cell (i, j), all channels
            torch.testing.assert_close(out.local_features[:, i * w + j], fmap[:, :, i, j])


def test_vit_cls_global_and_patch_tokens():
    torch.manual_seed(0)
    enc = ImageEncoder("vit_tiny_patch16_224", image_size=64).eval()
    with torch.no_grad():
        out = enc(torch.randn(2, 3, 64, 64))
    assert enc.kind == "vit" and out.grid == (4, 4)
    assert out.global_features.shape == (2, 192) and out.local_features.shape == (2, 16, 192)


def test_unknown_backbone_is_a_value_error():
    with pytest.raises(ValueError, match="no_such_net"):
        ImageEncoder("no_such_net")


def test_local_weight_files_timm_and_torchvision(tmp_path):
    torch.manual_seed(1)
    tv = torchvision.models.resnet18()
    torch.save({"state_dict": {f"module.{k}": v for k, v in tv.state_dict().items()}}, tmp_path / "tv.pth")
    enc = ImageEncoder("resnet18", image_size=64, pretrained_path=tmp_path / "tv.pth")
    torch.testing.assert_close(enc.backbone.conv1.weight, tv.conv1.weight)
    torch.testing.assert_close(enc.backbone.layer4[1].bn2.running_var, tv.layer4[1].bn2.running_var)
    with pytest.raises(ValueError, match="do not fit"):
        ImageEncoder("resnet34", image_size=64, pretrained_path=tmp_path / "tv.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        load_weight_file(tmp_path / "junk.pth")
    with pytest.raises(FileNotFoundError):
        load_weight_file(tmp_path / "absent.pth")


def test_vit_weights_from_a_224_checkpoint_load_at_another_size(tmp_path):
    torch.manual_seed(2)
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    torch.save(source.state_dict(), tmp_path / "vit.pth")
    enc = ImageEncoder("vit_tiny_patch16_224", image_size=64, pretrained_path=tmp_path / "vit.pth")
    torch.testing.assert_close(enc.backbone.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert enc.backbone.pos_embed.shape[1] == 1 + 16  # resampled from 14x14


def test_resnet50_export_loads_in_timm_and_torchvision_with_strict_keys():
    enc = ImageEncoder("resnet50", image_size=64)
    state = enc.backbone_state_dict()
    for target in (timm.create_model("resnet50", pretrained=False), torchvision.models.resnet50()):
        result = target.load_state_dict(state, strict=False)
        assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"] and result.unexpected_keys == []
        torch.testing.assert_close(target.layer3[2].conv2.weight, enc.backbone.layer3[2].conv2.weight)


def test_text_encoder_from_config_and_bad_folder(tmp_path):
    enc = TextEncoder(config=TINY_TEXT)
    feats = enc(torch.randint(0, 100, (2, 7)), torch.ones(2, 7, dtype=torch.long))
    assert feats.shape == (2, 7, 32) and enc.tokenizer is None
    assert all(not p.requires_grad for p in enc.model.pooler.parameters())
    with pytest.raises(ValueError, match="no tokenizer"):
        enc.tokenize([["a sentence"]])
    with pytest.raises(FileNotFoundError):
        TextEncoder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        TextEncoder(tmp_path / "empty")


def test_real_minilm_folder_tokenize_and_encode():
    """The shipped MiniLM weights load from disk; reports -> sentence-indexed tokens -> features."""
    enc = TextEncoder(max_length=16)
    assert enc.hidden_size == 384
    reports = [["No pneumothorax", "The heart is normal in size"], ["Small left pleural effusion"], ["", "Clear lungs"]]
    batch = enc.tokenize(reports)
    tok = enc.tokenizer
    ids, index = batch["input_ids"], batch["sentence_index"]
    assert ids[0, 0] == tok.cls_token_id and batch["num_sentences"].tolist() == [2, 1, 1]
    first = tok("No pneumothorax", add_special_tokens=False)["input_ids"]
    assert ids[0, 1:1 + len(first)].tolist() == first and index[0, 1:1 + len(first)].tolist() == [0] * len(first)
    assert index[0, 1 + len(first)] == 1 and index[0, 0] == -1
    sep = int(batch["attention_mask"][1].sum()) - 1
    assert ids[1, sep] == tok.sep_token_id and index[1, sep] == -1 and (index[1, sep:] == -1).all()
    short = enc.tokenize(reports, max_length=4)  # [CLS] + 2 tokens + [SEP]: the 2nd sentence is cut off
    assert short["input_ids"].shape[1] == 4 and short["num_sentences"].tolist() == [1, 1, 1]
    assert short["sentence_index"][0].tolist() == [-1, 0, 0, -1]
    with torch.no_grad():
        feats = enc(ids, batch["attention_mask"])
    assert feats.shape == (*ids.shape, 384) and torch.isfinite(feats).all()
    with pytest.raises(ValueError, match="report 0"):
        enc.tokenize([[""]])


def test_text_feature_cache_matches_the_frozen_model_and_skips_known_reports():
    torch.manual_seed(0)
    enc = TextEncoder(config=TINY_TEXT, cache_features=True)
    assert not any(p.requires_grad for p in enc.model.parameters())
    enc.train()
    assert not enc.model.training  # a caching encoder never runs dropout
    ids = torch.randint(5, 100, (3, 10))
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:] = 0  # right padding
    ids[1, 6:] = 0
    calls = []
    enc.model.register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs["input_ids"]),
                                   with_kwargs=True)
    out = enc(ids, mask)
    with torch.no_grad():
        full = enc.model(input_ids=ids, attention_mask=mask).last_hidden_state
    calls.clear()
    torch.testing.assert_close(out[0], full[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[1, :6], full[1, :6], atol=1e-5, rtol=1e-5)
    assert torch.all(out[1, 6:] == 0) and len(enc.cache) == 3
    # the same reports in another order, padded wider, plus one new report: only the new one is encoded
    ids2 = torch.cat([ids[[2, 1]], torch.randint(5, 100, (1, 10))])
    mask2 = torch.cat([mask[[2, 1]], torch.ones(1, 10, dtype=torch.long)])
    out2 = enc(torch.nn.functional.pad(ids2, (0, 4)), torch.nn.functional.pad(mask2, (0, 4)))
    assert len(calls) == 1 and calls[0].shape[0] == 1 and len(enc.cache) == 4
    torch.testing.assert_close(out2[0, :10], out[2])
    torch.testing.assert_close(out2[1, :10], out[1])


def test_text_feature_cache_fills_in_length_sorted_chunks_once_per_distinct_report():
    torch.manual_seed(1)
    enc = TextEncoder(config=TINY_TEXT, cache_features=True)
    lengths = [12, 3, 7, 12, 5, 9, 4, 11, 6, 8, 10, 2]
    ids = torch.randint(5, 100, (len(lengths), 12))
    ids[3] = ids[0]  # a repeated report: encoded once
    mask = (torch.arange(12)[None] < torch.tensor(lengths)[:, None]).long()
    ids = ids * mask
    calls = []
    enc.model.register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs["input_ids"].shape),
                                   with_kwargs=True)
    out = enc(ids, mask)
    assert [c[0] for c in calls] == [8, 3] and len(enc.cache) == 11
    assert calls[0][1] == 9  # the 8 shortest distinct reports (2..9 tokens) are padded to 9, not 12
    with torch.no_grad():
        for b, n in enumerate(lengths):  # each report as if encoded alone
            alone = enc.model(input_ids=ids[b:b + 1, :n], attention_mask=mask[b:b + 1, :n]).last_hidden_state[0]
            torch.testing.assert_close(out[b, :n], alone, atol=1e-5, rtol=1e-5)
            assert torch.all(out[b, n:] == 0)


def test_text_feature_cache_refuses_a_trainable_model():
    enc = TextEncoder(config=TINY_TEXT, cache_features=True)
    enc.model.encoder.layer[0].requires_grad_(True)
    with pytest.raises(ValueError, match="frozen"):
        enc(torch.ones(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
