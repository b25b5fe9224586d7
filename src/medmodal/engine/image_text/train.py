"""Run one image-text pre-training job (``medmodal cxr pretrain``): train, export, evaluate.

Run folder ``<out_dir>/``::

    config.yaml          the resolved config (what ran)
    splits.json          study ids per split and how the splits were drawn, reader notes
    checkpoints/         last.ckpt (every epoch; resume) and best.ckpt (lowest val/loss)
    logs/                metrics.csv (+ TensorBoard events): losses per step, stage, learning rate
    export/              image_encoder/ (medmodal-image-encoder/1) + text_encoder/ (Hugging Face) + export.json
    report.md, evaluation.png, metrics.json
                         retrieval R@1/5/10 and zero-shot AUROC on the test split, beside the same
                         model untrained (random-init image encoder); metrics.json is written last
    train_time.json      fit wall time (summed over resumed sessions)

``resume="auto"`` (:mod:`medmodal.engine.run`): a folder holding ``metrics.json`` is a finished run
(returned as is, ``skipped=True``); one with ``checkpoints/last.ckpt`` continues from it bit-identically.

Every DDP process runs this function; only the global rank 0 writes and evaluates.
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path

import lightning as L
import torch

from medmodal.config import save_config
from medmodal.distributed import is_global_zero
from medmodal.bundle import CXR_EXPORT, FORMAT_KEY
from medmodal.engine.image_text.config import PretrainConfig, default_run_dir, resolved_precision
from medmodal.engine.image_text.data import PretrainDataModule
from medmodal.engine.image_text.export import export_model, training_tokenizer
from medmodal.engine.image_text.module import ImageTextPretrainModule, build_model, ddp_strategy
from medmodal.engine.run import RunResult, finished_result, fit, removes_new_files_on_input_error
from medmodal.engine.trainer import TRAIN_TIME_FILE, fit_time_seconds, make_trainer, quiet_lightning
from medmodal.errors import DataError
from medmodal.io import atomic_write_json, ensure_writable_dir, load_torch_file

__all__ = ["run_pretraining", "evaluate_run_model", "SPLITS_FILE"]

SPLITS_FILE = "splits.json"


def _write_splits(path: Path, data: PretrainDataModule, cfg: PretrainConfig) -> None:
    atomic_write_json(path, {
        "source": str(cfg.data.root), "layout": cfg.data.layout, "split_seed": cfg.data.split_seed,
        "counts": data.counts(), "notes": data.notes,
        "splits": {name: [s.study_id for s in rows] for name, rows in data.splits.items()}})


def _share_frozen_text_cache(trained: torch.nn.Module, untrained: torch.nn.Module) -> None:
    """Let the untrained reference reuse the trained model's cached text features when both text
    encoders are the same frozen folder (``cache_features``: never trained, identical weights), so
    the test reports are not encoded twice."""
    a, b = getattr(trained, "text_encoder", None), getattr(untrained, "text_encoder", None)
    if (a is not None and b is not None and getattr(a, "cache_features", False) and b.cache_features
            and a.path is not None and a.path == b.path):
        b.cache = a.cache


def evaluate_run_model(model: torch.nn.Module, data: PretrainDataModule, cfg: PretrainConfig,
                       device: torch.device | str = "cpu") -> dict:
    """Retrieval + zero-shot of ``model`` on the test split
    (:func:`medmodal.evaluation.image_text.evaluate_image_text`)."""
    from medmodal.evaluation.image_text import evaluate_image_text

    return evaluate_image_text(model, data.dataset(cfg.data.test_split, train=False), data.collator, device=device,
                               ks=tuple(int(k) for k in cfg.eval.ks), prompts=cfg.eval.prompts,
                               batch_size=cfg.data.eval_batch_size or cfg.data.batch_size)


def _artefacts(run_dir: Path, cfg: PretrainConfig) -> dict:
    return {"export": str(run_dir / "export")} if cfg.export else {}


@removes_new_files_on_input_error
def run_pretraining(cfg: PretrainConfig, resume: str | None = "auto", extra_callbacks=()) -> RunResult:
    """Pre-train, export and evaluate; write the run folder (module docstring).

    Args:
        cfg: the run's config (``out_dir`` default: ``runs/pretrain/<model>-<data>-seed<seed>``).
        resume: ``auto`` | ``never`` | a checkpoint path.
        extra_callbacks: Lightning callbacks appended to the shared ones.

    Returns:
        :class:`~medmodal.engine.run.RunResult` of ``{"run_dir", "model", "epochs", "train_seconds",
        "wall_seconds", "counts", "export", "evaluation" (per model label: retrieval + zero-shot),
        "notes"}`` (``metrics.json``; on non-zero DDP ranks without ``evaluation``); ``artefacts["export"]``.

    Raises:
        ValueError / FileNotFoundError / CXRDataError / EncoderLoadError: bad input (one line each).
    """
    quiet_lightning()
    warnings.filterwarnings("ignore", message=r".*`isinstance\(treespec, LeafSpec\)` is deprecated.*")
    cfg = copy.deepcopy(cfg)
    if not cfg.out_dir:
        cfg.out_dir = default_run_dir(cfg)
    run_dir = ensure_writable_dir(cfg.out_dir)
    finished = run_dir / "metrics.json"
    done = finished_result(run_dir, resume, artefacts=_artefacts(run_dir, cfg), cfg=cfg)
    if done is not None:
        return done
    started = time.perf_counter()
    L.seed_everything(cfg.trainer.seed, workers=True, verbose=False)
    module = ImageTextPretrainModule.from_config(cfg)
    tokenizer = training_tokenizer(module.model)
    data = PretrainDataModule(cfg, tokenizer=tokenizer)
    if not data.splits.get(cfg.data.val_split):
        raise DataError(f"{cfg.data.root}: no row in the validation split {cfg.data.val_split!r} "
                        f"(best.ckpt is chosen on val/loss)")
    if is_global_zero():
        save_config(cfg, run_dir / "config.yaml")
        _write_splits(run_dir / SPLITS_FILE, data, cfg)
    t = cfg.trainer
    trainer = make_trainer(run_dir, t, monitor=t.monitor, mode="min", grad_clip=cfg.optim.grad_clip,
                           precision=resolved_precision(cfg), use_distributed_sampler=False,
                           extra_callbacks=extra_callbacks, strategy=ddp_strategy(cfg))
    # the frozen, feature-caching text encoder (``cache_text_features``) stays in eval mode on purpose
    fit(trainer, module, data, run_dir, resume, eval_mode_expected=True)
    result = {"run_dir": str(run_dir), "model": cfg.model.name, "epochs": int(trainer.current_epoch),
              "stages": {"stage1_epochs": t.stage1_epochs, "stage2_epochs": t.stage2_epochs},
              "train_seconds": round(fit_time_seconds(trainer), 2), "counts": data.counts(),
              "notes": list(data.notes)}
    if not trainer.is_global_zero:
        return RunResult.from_dict(result)
    atomic_write_json(run_dir / TRAIN_TIME_FILE, {"train_seconds": result["train_seconds"]})
    model = module.model
    checkpoint = "final weights (last.ckpt)"
    if cfg.eval.checkpoint == "best" and (run_dir / "checkpoints" / "best.ckpt").is_file():
        best = load_torch_file(run_dir / "checkpoints" / "best.ckpt")
        module.load_state_dict(best["state_dict"])
        checkpoint = f"best.ckpt (epoch {best.get('epoch')})"
    model = module.model.cpu().float().eval()
    device = torch.device("cuda" if resolved_precision(cfg) != "32-true" and torch.cuda.is_available() else "cpu")
    if cfg.export:
        exported = export_model(model, run_dir / "export", source=f"{cfg.model.name} pre-training, run {run_dir} "
                                f"({checkpoint})", image_size=cfg.data.image_size, tokenizer=tokenizer)
        atomic_write_json(run_dir / "export" / "export.json", {**exported, "checkpoint": checkpoint,
                                                                "model": cfg.model.name, FORMAT_KEY: CXR_EXPORT})
        result["export"] = exported
    if cfg.eval.enabled and data.splits.get(cfg.data.test_split):
        from medmodal.evaluation.image_text import evaluation_notes, write_evaluation_report

        evaluations = {"pretrained": evaluate_run_model(model.to(device), data, cfg, device)}
        if cfg.eval.untrained_baseline:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.trainer.seed)
                untrained = build_model(cfg).eval()
            _share_frozen_text_cache(model, untrained)
            evaluations["untrained"] = evaluate_run_model(untrained.to(device), data, cfg, device)
            del untrained
        model.cpu()
        result["notes"].extend(evaluation_notes(evaluations["pretrained"]))
        result["evaluation"] = evaluations
        result["wall_seconds"] = round(time.perf_counter() - started, 2)
        result["checkpoint"] = checkpoint
        result["split"] = cfg.data.test_split
        info = {k: v for k, v in result.items() if k != "evaluation"}
        result.update(write_evaluation_report(run_dir, evaluations, info=info))
    else:
        result["wall_seconds"] = round(time.perf_counter() - started, 2)
        if cfg.eval.enabled:
            result["notes"].append(f"no row in the test split {cfg.data.test_split!r}: no evaluation")
        atomic_write_json(finished, result)
    return RunResult.from_dict(result, _artefacts(run_dir, cfg))
