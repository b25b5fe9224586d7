"""Training-module speed options (channels_last_3d, torch.compile) keep the maths unchanged."""

import pytest
import torch

from medmodal.config import load_config, packaged_config
from medmodal.engine.segmentation.module import SegmentationModule
from medmodal.models import create_model
from medmodal.models.segmentation.blocks import to_channels_last_3d

TINY = {"widths": [4, 8, 16], "token_grid": 2, "num_heads": 2, "depth": 1}


def test_to_channels_last_3d_converts_conv_kernels_only():
    torch.manual_seed(0)
    model = create_model("dmafnet", modalities=("a", "b"), num_classes=3, **TINY).eval()
    x, mask = torch.randn(1, 2, 16, 16, 16), torch.tensor([[True, False]])
    before = model(x, mask)
    to_channels_last_3d(model)
    kernels = [p for p in model.parameters() if p.dim() == 5]
    assert kernels and all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in kernels)
    assert torch.allclose(model(x.contiguous(memory_format=torch.channels_last_3d), mask), before, atol=1e-5)


def test_module_setup_applies_channels_last_and_trains():
    cfg = load_config(packaged_config("demo_cpu"), ["trainer.channels_last=true", f"model.kwargs={TINY}"])
    module = SegmentationModule.from_experiment(cfg)
    module.setup("fit")
    assert all(p.is_contiguous(memory_format=torch.channels_last_3d) for p in module.model.parameters() if p.dim() == 5)
    batch = {"image": torch.randn(2, 4, 16, 16, 16), "modality_mask": torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0]]).bool(),
             "label": torch.randint(0, 4, (2, 1, 16, 16, 16))}
    loss = module.forward_loss(module._images(batch), batch["modality_mask"], batch["label"], None)["loss"]
    loss.backward()
    assert torch.isfinite(loss) and module.model.encoders[0].parameters().__next__().grad is not None


def _batch():
    g = torch.Generator().manual_seed(1)
    return {"image": torch.randn(2, 4, 16, 16, 16, generator=g),
            "modality_mask": torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0]]).bool(),
            "label": torch.randint(0, 4, (2, 1, 16, 16, 16), generator=g)}


def test_compiled_training_step_is_one_graph_and_matches_eager(monkeypatch):
    """trainer.compile: forward_loss compiles with fullgraph=True (dynamo's eager backend here, so
    the test is fast; inductor itself is covered by the slow test in tests/models/segmentation/test_pairs.py)."""
    compile_calls, real_compile = [], torch.compile

    def eager_backend_compile(fn, **kwargs):
        compile_calls.append(kwargs)
        return real_compile(fn, backend="eager", fullgraph=kwargs["fullgraph"])

    cfg = load_config(packaged_config("demo_cpu"), [f"model.kwargs={TINY}", "loss.use_dtm=true"])
    eager = SegmentationModule.from_experiment(cfg)
    torch.manual_seed(0)
    compiled = SegmentationModule.from_experiment(
        load_config(packaged_config("demo_cpu"), [f"model.kwargs={TINY}", "loss.use_dtm=true", "trainer.compile=true",
                                                  "trainer.compile_mode=reduce-overhead"]))
    compiled.load_state_dict(eager.state_dict())
    monkeypatch.setattr("medmodal.engine.segmentation.module.torch.compile", eager_backend_compile)
    torch._dynamo.reset()
    compiled.setup("fit")
    assert compile_calls == [{"fullgraph": True, "mode": "reduce-overhead"}]
    batch, weights = _batch(), torch.tensor([1.2, 0.8, 1.0, 1.0])
    want = eager.forward_loss(batch["image"], batch["modality_mask"], batch["label"], weights)
    got = compiled._train_forward(batch["image"], batch["modality_mask"], batch["label"], weights)
    torch.testing.assert_close(got["loss"], want["loss"])
    assert got.keys() == want.keys()
    torch.testing.assert_close(got["gaps"], want["gaps"], equal_nan=True)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # checkpoints keep their keys


def test_unknown_compile_mode_is_refused():
    cfg = load_config(packaged_config("demo_cpu"), [f"model.kwargs={TINY}", "trainer.compile=true",
                                                    "trainer.compile_mode=fastest"])
    module = SegmentationModule.from_experiment(cfg)
    with pytest.raises(ValueError, match="compile_mode must be one of"):
        module.setup("fit")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_compiled_step_and_dtm_never_wait_for_the_gpu():
    """With trainer.compile, forward + loss + backward + the DTM update and gradient scaling make
    no host-device synchronisation (CUDA's sync debug mode raises on any)."""
    cfg = load_config(packaged_config("demo_cpu"), [f"model.kwargs={TINY}", "loss.use_dtm=true", "trainer.compile=true"])
    module = SegmentationModule.from_experiment(cfg).cuda()
    module.setup("fit")
    module.dtm.to("cuda")
    module.dtm._host_grad_scales = [0.5, 1.0, 0.8, 1.0]  # exercise the scaling, as after an epoch
    batch = {k: v.cuda() for k, v in _batch().items()}

    def step():
        out = module._train_forward(batch["image"], batch["modality_mask"], batch["label"], module.dtm.loss_weights)
        out["loss"].backward()
        module.dtm.update(out["gaps"])
        module.dtm.scale_encoder_gradients(module.model.encoders)

    step()  # compiles (which may synchronise)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert module.dtm.steps == 2 and torch.isfinite(module.dtm.gap_ema).any()


#: ``forward_loss`` on the tree before the objective contract (commit a3d1149), same module, weights and batch
BEFORE_CONTRACT = {'loss': 6.194086074829102, 'seg': 2.2070393562316895, 'deep': 1.1092541217803955, 'aux': 2.2232351303100586, 'cca': 0.22223089635372162, 'maa': 1.0682363510131836, 'rd': 0.6452335715293884, 'proto': 0.006383825093507767, 'pd': 0.0031919125467538834, 'gaps': [0.6452314853668213, 0.5444982647895813, 0.7271000146865845, 0.6768723130226135]}


def test_objective_from_config_gives_the_values_of_before():
    """loss.name defaults to dmafnet and dtm.name to dtm: the step's numbers are those of before (recorded on one
    thread; bit-identical there when the objective moved, compared here to 1e-5 so that another CPU's kernels
    or thread count do not fail it, while any change of a formula does)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_objective_values()
    finally:
        torch.set_num_threads(threads)


def _check_objective_values():
    torch.manual_seed(0)
    module = SegmentationModule.from_experiment(
        load_config(packaged_config("demo_cpu"), [f"model.kwargs={TINY}", "loss.use_dtm=true"]))
    assert type(module.objective).__name__ == "DMAFNetLoss" and module.objective is module.criterion
    assert type(module.monitor).__name__ == "DynamicTrainingMonitor" and module.use_dtm
    batch = _batch()
    out = module.forward_loss(batch["image"], batch["modality_mask"], batch["label"], torch.tensor([1.2, 0.8, 1.0, 1.0]))
    got = {k: (v.tolist() if k == "gaps" else v.item()) for k, v in out.items()}
    assert got.keys() == BEFORE_CONTRACT.keys()
    for key, value in BEFORE_CONTRACT.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_objective_and_monitor_names_and_switches_from_config():
    from medmodal.errors import ConfigError

    named = SegmentationModule.from_experiment(load_config(packaged_config("demo_cpu"), [
        f"model.kwargs={TINY}", "loss.name=dmafnet", "loss.use_dtm=true", "dtm.name=dtm", "dtm.enabled=false"]))
    assert type(named.objective).__name__ == "DMAFNetLoss" and not named.use_dtm
    with pytest.raises(ConfigError, match="unknown loss.name"):
        SegmentationModule.from_experiment(load_config(packaged_config("demo_cpu"), [f"model.kwargs={TINY}",
                                                                                     "loss.name=nope"]))
    with pytest.raises(ConfigError, match="unknown dtm.name"):
        SegmentationModule.from_experiment(load_config(packaged_config("demo_cpu"), [f"model.kwargs={TINY}",
                                                                                     "dtm.name=nope"]))


def test_a_paradigm_subclass_overrides_only_what_differs(monkeypatch):
    """A new paradigm (e.g. a mean teacher) overrides compute_objective only; training_step, the monitor
    update and the logging come from SegmentationModule."""

    class Doubled(SegmentationModule):
        def compute_objective(self, batch):
            out = super().compute_objective(batch)
            return {**out, "loss": 2 * out["loss"], "consistency": torch.zeros(())}

    cfg = load_config(packaged_config("demo_cpu"), [f"model.kwargs={TINY}", "dtm.enabled=false"])
    torch.manual_seed(0)
    base = SegmentationModule.from_experiment(cfg)
    torch.manual_seed(0)
    sub = Doubled.from_experiment(cfg)
    logged = {}
    monkeypatch.setattr(sub, "log", lambda name, value, **kw: logged.__setitem__(name, value))
    loss = sub.training_step(_batch(), 0)
    assert torch.equal(loss, 2 * base.compute_objective(_batch())["loss"])
    assert {"train/loss", "train/consistency", "train/seg"} <= set(logged) and "train/gaps" not in logged
