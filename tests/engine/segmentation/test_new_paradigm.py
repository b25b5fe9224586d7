"""A new segmentation training paradigm from the extension points alone (docs/extending.md, "A new
training paradigm"): a mean teacher (Tarvainen & Valpola, NeurIPS 2017) as

* an objective registered by name (``loss.name: mean_teacher``) wrapping the supervised one, and
* a :class:`SegmentationModule` subclass overriding only what differs (an EMA teacher, its logits in
  the step context, the EMA step after each batch),

trained by ``run_training(cfg, module_cls=...)``; its bundle is an ordinary ``seg/model``. The code
below is the worked example of the docs, verbatim.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from medmodal.bundle import bundle_format
from medmodal.config import load_run_config
from medmodal.config.segmentation import SegmentationRunConfig
from medmodal.data.volumes.synthetic_brats import synth_brats
from medmodal.engine.segmentation.module import SegmentationModule
from medmodal.engine.segmentation.train import run_training
from medmodal.layers.momentum import ema_update_, momentum_copy
from medmodal.layers.ramps import sigmoid_rampup
from medmodal.losses import Objective, StepContext, get_objective_class, register_objective, split_objective_config
from medmodal.losses.base import unregister_objective
from medmodal.models.bundles import load_model


# ---------------------------------------------------------------- the worked example (docs/extending.md)
class MeanTeacherObjective(Objective):
    """``supervised`` objective + ``weight * sigmoid_rampup(epoch, rampup_epochs) * MSE(softmax student,
    softmax teacher)``; the teacher's logits come in ``context.extra["teacher_logits"]``."""

    def __init__(self, supervised: Objective, weight: float = 1.0, rampup_epochs: int = 5):
        super().__init__()
        self.supervised, self.weight, self.rampup_epochs = supervised, float(weight), int(rampup_epochs)

    @classmethod
    def from_options(cls, options=None, **sizes) -> "MeanTeacherObjective":
        options = dict(options or {})
        name, inner = split_objective_config(options.pop("supervised", None), "dmafnet")
        return cls(get_objective_class(name).from_options(inner, **sizes), **options)

    def forward(self, inputs, context: StepContext) -> dict[str, torch.Tensor]:
        out = self.supervised(inputs, context)
        teacher = context.extra["teacher_logits"]
        consistency = F.mse_loss(inputs["logits"].softmax(1), teacher.softmax(1))
        ramp = sigmoid_rampup(context.extra.get("epoch", 0), self.rampup_epochs)
        return {**out, "loss": out["loss"] + self.weight * ramp * consistency, "consistency": consistency.detach()}


class MeanTeacherModule(SegmentationModule):
    """An EMA copy of the model gives the consistency target; everything else is the parent's."""

    ema_momentum = 0.99

    def __init__(self, config: dict):
        super().__init__(config)
        self.teacher = momentum_copy(self.model)  # frozen: configure_optimizers leaves it out

    def compute_objective(self, batch: dict) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            self._teacher_logits = self.teacher(self._images(batch), batch["modality_mask"])
        return super().compute_objective(batch)

    def step_context(self, label, sequence_weights) -> StepContext:
        context = super().step_context(label, sequence_weights)
        context.extra.update(teacher_logits=self._teacher_logits, epoch=self.current_epoch)
        return context

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        ema_update_(self.model, self.teacher, self.ema_momentum)
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def mean_teacher_objective():
    register_objective("mean_teacher")(MeanTeacherObjective)
    yield
    unregister_objective("mean_teacher")


def test_a_mean_teacher_subclass_trains_with_its_objective_from_config(mean_teacher_objective, tmp_path):
    synth_brats(tmp_path / "data", num_cases=4, size=16, seed=0)
    cfg = load_run_config(SegmentationRunConfig, preset="train_demo_cpu", overrides=[
        f"data.root={tmp_path / 'data'}", f"out_dir={tmp_path / 'run'}", "trainer.max_epochs=1",
        "trainer.val_every_n_epochs=1", "trainer.progress_bar=false", "trainer.log_every_n_steps=1",
        "data.samples_per_epoch=2",
        "data.split_fractions=[0.5,0.25,0.25]", "data.crop_size=[16,16,16]", "eval.roi_size=[16,16,16]",
        "model.kwargs.widths=[4,8,16,32]", "loss.name=mean_teacher", "loss.weight=2.0", "loss.rampup_epochs=0"])
    result = run_training(cfg, module_cls=MeanTeacherModule)
    logs = (result.path / "logs" / "metrics.csv").read_text()
    assert "train/consistency" in logs.splitlines()[0] and "train/loss" in logs.splitlines()[0]
    assert bundle_format(result / "model") == "seg/model"  # evaluate / score / predict serve it unchanged
    state = torch.load(result.path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert any(k.startswith("teacher.") for k in state) and any(k.startswith("criterion.supervised.") for k in state)
    for source in (result / "model", result.path / "checkpoints" / "last.ckpt"):  # what evaluate / predict load
        model, meta = load_model(source)
        assert meta["model_name"] == "dmafnet" and model.num_classes == 4
