"""Two CPU processes (gloo): the gathered global InfoNCE equals the single-process full-batch loss,
and the gradients that DDP averages equal the full-batch gradients."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from medmodal.losses.image_text import info_nce_loss

WORLD, LOCAL_BATCH = 2, 3


def _embeddings():
    g = torch.Generator().manual_seed(0)
    return (F.normalize(torch.randn(WORLD * LOCAL_BATCH, 8, generator=g), dim=-1),
            F.normalize(torch.randn(WORLD * LOCAL_BATCH, 8, generator=g), dim=-1))


def _worker(rank: int, port: int, folder: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        image, text = _embeddings()
        rows = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
        image, text = image[rows].clone().requires_grad_(True), text[rows].clone().requires_grad_(True)
        loss = info_nce_loss(image, text, 10.0)
        loss.backward()
        torch.save({"loss": loss.detach(), "image_grad": image.grad, "text_grad": text.grad}, f"{folder}/{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gathered_info_nce_matches_full_batch(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(tmp_path)), nprocs=WORLD, join=True)
    image, text = (t.clone().requires_grad_(True) for t in _embeddings())
    full = info_nce_loss(image, text, 10.0)
    full.backward()
    parts = [torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in range(WORLD)]
    torch.testing.assert_close(sum(p["loss"] for p in parts) / WORLD, full.detach())
    for r, part in enumerate(parts):  # DDP averages over processes
        rows = slice(r * LOCAL_BATCH, (r + 1) * LOCAL_BATCH)
        torch.testing.assert_close(part["image_grad"] / WORLD, image.grad[rows])
        torch.testing.assert_close(part["text_grad"] / WORLD, text.grad[rows])
