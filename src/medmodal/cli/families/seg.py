"""``medmodal seg``: every segmentation method (DMAF-Net and its baselines on MRI volumes, DGSSA on retinal vessels,
MSLAU-Net and its baselines on 2-D slices and photographs): a model trained by any of them is trained, evaluated
and predicted the same way."""

from __future__ import annotations

from medmodal.cli.benchmark import seg_benchmark_cmd, seg_speed_cmd
from medmodal.cli.data.volumes import (missing_rates_cmd, preprocess_cmd, split_cmd, summary_cmd, synth_brats_cmd,
                                       synth_cmd, synth_myops_cmd)
from medmodal.cli.demo import demo_cmd
from medmodal.cli.evaluate import evaluate_cmd
from medmodal.cli.family import Alias, Family, family_app
from medmodal.cli.predict import predict_cmd
from medmodal.cli.score import score_cmd
from medmodal.cli.train import train_cmd

HELP = ("Segmentation (multi-modal MRI with missing sequences, DMAF-Net and baselines; retinal vessels across "
        "cameras, DGSSA and baselines; 2-D slices and photographs (Synapse, ACDC, polyps), MSLAU-Net and baselines; "
        "semi-supervised 2-D and 3-D segmentation with few labels (ACDC, LA2018, BHSD-style CT, knee slices, your "
        "folder with unlabelled/), Mean Teacher, UA-MT, CPS, ERANet, SWDL-Net): train, evaluate, score, predict, "
        "benchmark, speed, demo, and the data verbs.")
app = family_app("seg", HELP)
for verb, func in (("train", train_cmd), ("evaluate", evaluate_cmd), ("predict", predict_cmd), ("score", score_cmd),
                   ("benchmark", seg_benchmark_cmd), ("speed", seg_speed_cmd), ("demo", demo_cmd),
                   ("synth", synth_cmd), ("summary", summary_cmd), ("split", split_cmd),
                   ("missing-rates", missing_rates_cmd), ("preprocess", preprocess_cmd)):
    app.command(verb)(func)

FAMILY = Family(
    key="seg", help=HELP, app=app,
    presets=("demo_cpu", "dmafnet_brats2020", "dmafnet_myops2020", "passion_brats2020", "tiny_myops2020",
             "train_vessels_demo_cpu", "train_dgssa_drive", "train_2d_demo_cpu", "train_mslau_acdc",
             "train_mslau_synapse", "train_mslau_cvc", "train_mt_acdc", "train_eranet_acdc", "train_uamt_la",
             "train_swdl_la", "train_semi_la_cpu", "train_semi_demo_cpu", "train_swdl_demo_cpu"),
    benchmark="medmodal.experiments.seg.benchmark", speed="medmodal.experiments.seg.speed", demo="demo",
    aliases=(Alias("train", train_cmd, "seg train"), Alias("evaluate", evaluate_cmd, "seg evaluate"),
             Alias("predict", predict_cmd, "seg predict"), Alias("score", score_cmd, "seg score"),
             Alias("demo", demo_cmd, "seg demo"),
             Alias("data synth-brats", synth_brats_cmd, "seg synth --dataset brats2020"),
             Alias("data synth-myops", synth_myops_cmd, "seg synth --dataset myops2020"),
             Alias("data summary", summary_cmd, "seg summary"), Alias("data split", split_cmd, "seg split"),
             Alias("data missing-rates", missing_rates_cmd, "seg missing-rates"),
             Alias("data preprocess", preprocess_cmd, "seg preprocess")),
    configs={"train": "medmodal.engine.segmentation.config:load_train_config"},  # the task picks the class
    smoke=(("seg", "synth", "{out}/data", "-n", "4", "-s", "16"),
           ("seg", "train", "--preset", "train_demo_cpu", "--data", "{out}/data", "--out", "{out}/run",
            *(a for o in ("trainer.max_epochs=1", "trainer.val_every_n_epochs=1", "trainer.progress_bar=false",
                          "data.samples_per_epoch=2", "data.split_fractions=[0.5,0.25,0.25]",
                          "data.crop_size=[16,16,16]", "eval.roi_size=[16,16,16]", "model.kwargs.widths=[4,8,16,32]")
              for a in ("--set", o)))),
)
