"""Batched building blocks: sentence pooling, attention pool, sigmoid cross-attention, masking, decoder."""

from __future__ import annotations

import pytest
import torch

from medmodal.models.image_text.layers import (
    LocalCrossAttention,
    ReconstructionDecoder,
    SentenceAttentionPool,
    pool_sentences,
    spatial_token_mask,
)
from tests.models.image_text.conftest import tiny_batch


def test_pool_sentences_equals_a_loop_and_masks_truncated_sentences():
    batch = tiny_batch()
    tokens = torch.randn(*batch["sentence_index"].shape, 6)
    sentences, mask = pool_sentences(tokens, batch["sentence_index"], batch["num_sentences"])
    assert sentences.shape == (5, 4, 6) and mask.shape == (5, 4)
    for b in range(5):
        for s in range(4):
            picked = tokens[b][batch["sentence_index"][b] == s]
            assert bool(mask[b, s]) == (len(picked) > 0)
            if len(picked):
                torch.testing.assert_close(sentences[b, s], picked.mean(0))
    assert not mask[2, 3] and int(batch["num_sentences"][2]) == 4  # cut-off sentence is masked out


def test_pool_sentences_rejects_bad_input():
    batch = tiny_batch()
    tokens = torch.randn(*batch["sentence_index"].shape, 6)
    with pytest.raises(ValueError, match="num_sentences"):
        pool_sentences(tokens, batch["sentence_index"], batch["num_sentences"] - 1)
    with pytest.raises(ValueError, match="no sentence"):
        pool_sentences(tokens, torch.full_like(batch["sentence_index"], -1), batch["num_sentences"])


def test_attention_pool_ignores_padded_sentences():
    pool = SentenceAttentionPool(8, num_heads=2).eval()
    sentences = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    out = pool(sentences, mask)
    noisy = torch.where(mask[..., None], sentences, torch.randn(3, 5, 8) * 100)
    torch.testing.assert_close(pool(noisy, mask), out)
    torch.testing.assert_close(pool(sentences[:1, :3], mask[:1, :3]), out[:1])


def test_cross_attention_is_sigmoid_batched_with_masks():
    attn = LocalCrossAttention(8)
    image, sentences = torch.randn(2, 4, 8), torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    t2i, i2t = attn(image, sentences, mask)
    assert t2i.shape == (2, 4, 8) and i2t.shape == (2, 3, 8)
    # sample 0 alone with its 2 valid sentences gives the same text-to-image features
    t2i_0, i2t_0 = attn(image[:1], sentences[:1, :2])
    torch.testing.assert_close(t2i[:1], t2i_0)
    torch.testing.assert_close(i2t[:1, :2], i2t_0)
    # sigmoid (not softmax): weights are independent gates, one sentence alone is not re-normalised
    q, k, v = attn.image_qkv(image[:1]).chunk(3, -1)[0], *attn.text_qkv(sentences[:1, :1]).chunk(3, -1)[1:]
    expected = torch.sigmoid(q @ k.transpose(1, 2) / 8 ** 0.5) @ v
    torch.testing.assert_close(attn(image[:1], sentences[:1, :1])[0], expected)


def test_spatial_token_mask_drops_whole_tokens():
    torch.manual_seed(0)
    keep = spatial_token_mask(64, 49, 0.5)
    assert keep.shape == (64, 49) and set(keep.unique().tolist()) <= {0.0, 2.0}
    assert 0.45 < float((keep == 0).float().mean()) < 0.55
    assert torch.equal(spatial_token_mask(2, 3, 0.0), torch.ones(2, 3))
    with pytest.raises(ValueError):
        spatial_token_mask(2, 3, 1.0)


@pytest.mark.parametrize("fusion,grid,size", [("concat", (2, 2), 64), ("attention", (4, 4), 64),
                                              ("concat", (3, 3), 96)])
def test_decoder_shape_range_and_no_cross_batch_attention(fusion, grid, size):
    torch.manual_seed(0)
    dec = ReconstructionDecoder(8, fusion=fusion, channels=(8, 4), num_layers=2, num_heads=2, ff_dim=16, grid=grid,
                                image_size=(size, size), value_range=(-1.0, 1.0)).eval()
    n = grid[0] * grid[1]
    image_tokens, text_tokens = torch.randn(3, n, 8), torch.randn(3, n, 8)
    out = dec(image_tokens, text_tokens, grid, (size, size))
    assert out.shape == (3, 3, size, size) and out.min() > -1 and out.max() < 1
    # each sample is decoded on its own (the released ViT decoder attended across the batch)
    changed = image_tokens.clone()
    changed[1:] = torch.randn(2, n, 8)
    torch.testing.assert_close(dec(changed, text_tokens, grid, (size, size))[0], out[0])
    # the output can go negative: it spans the image range, unlike Tanh(ReLU(.)) in [0, 1)
    with torch.no_grad():
        dec.head.bias.fill_(-5.0)
    assert dec(image_tokens, text_tokens, grid, (size, size)).max() < 0


def test_decoder_layers_have_their_own_weights():
    dec = ReconstructionDecoder(8, fusion="attention", channels=(4,), num_layers=3, num_heads=2, ff_dim=16,
                                grid=(2, 2), image_size=(32, 32))
    layers = dec.transformer.layers
    ptrs = {layer.linear1.weight.data_ptr() for layer in layers}
    assert len(layers) == 3 and len(ptrs) == 3
    assert all(layer.self_attn.batch_first for layer in layers)
    assert dec.upsamplings == 4  # 2 -> 32 px


def test_decoder_upsamplings_match_the_released_heads():
    resnet = ReconstructionDecoder(16, fusion="concat", grid=(7, 7), image_size=(224, 224))
    vit = ReconstructionDecoder(16, fusion="attention", grid=(14, 14), image_size=(224, 224), num_layers=1)
    assert resnet.upsamplings == 5 and resnet.channels == (512, 256, 128, 64)
    assert vit.upsamplings == 4 and vit.channels == (512, 256, 128)
