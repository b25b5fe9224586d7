"""``medmodal endoscopy``: paired white-light / narrow-band endoscopy (MICS and baselines)."""

from __future__ import annotations

from medmodal.cli.benchmark import endoscopy_benchmark_cmd
from medmodal.cli.data.endoscopy import (calibrate_nbi_cmd, simulate_nbi_cmd, split_endoscopy_cmd,
                                         summary_endoscopy_cmd, synth_endoscopy_cmd)
from medmodal.cli.endoscopy import (demo_endoscopy_cmd, finetune_endoscopy_cmd, predict_endoscopy_cmd,
                                    pretrain_endoscopy_cmd)
from medmodal.cli.family import Alias, Family, family_app

HELP = ("Paired white-light / narrow-band endoscopy (MICS and baselines): pretrain, finetune, predict, benchmark, "
        "demo, and the data verbs.")
app = family_app("endoscopy", HELP)
for verb, func in (("pretrain", pretrain_endoscopy_cmd), ("finetune", finetune_endoscopy_cmd),
                   ("predict", predict_endoscopy_cmd), ("benchmark", endoscopy_benchmark_cmd),
                   ("demo", demo_endoscopy_cmd), ("synth", synth_endoscopy_cmd), ("summary", summary_endoscopy_cmd),
                   ("split", split_endoscopy_cmd), ("simulate-nbi", simulate_nbi_cmd),
                   ("calibrate-nbi", calibrate_nbi_cmd)):
    app.command(verb)(func)

FAMILY = Family(
    key="endoscopy", help=HELP, app=app,
    presets=("mics_pretrain_demo_cpu", "mics_pretrain_kvasir", "mics_finetune_demo_cpu", "mics_finetune_kvasir"),
    benchmark="medmodal.experiments.endoscopy.benchmark", speed=None, demo="demo",
    aliases=(Alias("pretrain-endoscopy", pretrain_endoscopy_cmd, "endoscopy pretrain"),
             Alias("finetune-endoscopy", finetune_endoscopy_cmd, "endoscopy finetune"),
             Alias("predict-endoscopy", predict_endoscopy_cmd, "endoscopy predict"),
             Alias("demo-endoscopy", demo_endoscopy_cmd, "endoscopy demo"),
             Alias("data summary-endoscopy", summary_endoscopy_cmd, "endoscopy summary"),
             Alias("data split-endoscopy", split_endoscopy_cmd, "endoscopy split"),
             Alias("data simulate-nbi", simulate_nbi_cmd, "endoscopy simulate-nbi"),
             Alias("data calibrate-nbi", calibrate_nbi_cmd, "endoscopy calibrate-nbi"),
             Alias("data synth-endoscopy", synth_endoscopy_cmd, "endoscopy synth")),
    configs={"pretrain": "medmodal.engine.endoscopy.config:MICSPretrainRunConfig",
             "finetune": "medmodal.engine.endoscopy.config:MICSFinetuneRunConfig"},
    smoke=(("endoscopy", "synth", "{out}/data", "-n", "48", "-s", "32"),
           ("endoscopy", "pretrain", "--preset", "pretrain_demo_cpu", "--data", "{out}/data", "--out", "{out}/run",
            *(a for o in ("trainer.max_epochs=1", "data.image_size=32", "data.batch_size=16", "model.queue_size=8",
                          "model.encoder_kwargs={patch_size: 8, depth: 1, embed_dim: 32, num_heads: 2}",
                          "model.decoder_depth=1", "model.decoder_dim=16", "model.embed_dim=16")
              for a in ("--set", o)))),
)
