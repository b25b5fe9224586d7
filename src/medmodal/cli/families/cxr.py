"""``medmodal cxr``: chest X-ray image-report pre-training (CM-CGNS and baselines) and the downstream suite."""

from __future__ import annotations

from medmodal.cli.benchmark import cxr_benchmark_cmd, cxr_speed_cmd
from medmodal.cli.data.cxr import cxr_reports_cmd, downstream_summary_cmd, synth_cxr_cmd, synth_downstream_cmd
from medmodal.cli.demo import cxr_demo_cmd
from medmodal.cli.family import Alias, Family, family_app
from medmodal.cli.finetune import finetune_cmd, finetune_speed_cmd
from medmodal.cli.pretrain import export_cmd, pretrain_cmd

HELP = ("Chest X-ray image-report pre-training (CM-CGNS and baselines) and downstream fine-tuning: pretrain, "
        "export, finetune, benchmark, speed, demo, and the data verbs.")
app = family_app("cxr", HELP)
for verb, func in (("pretrain", pretrain_cmd), ("export", export_cmd), ("finetune", finetune_cmd),
                   ("benchmark", cxr_benchmark_cmd), ("speed", cxr_speed_cmd), ("finetune-speed", finetune_speed_cmd),
                   ("demo", cxr_demo_cmd), ("synth", synth_cxr_cmd), ("reports", cxr_reports_cmd),
                   ("synth-downstream", synth_downstream_cmd), ("summary", downstream_summary_cmd)):
    app.command(verb)(func)

FAMILY = Family(
    key="cxr", help=HELP, app=app,
    presets=("pretrain_demo_cpu", "pretrain_iu_xray", "pretrain_mimic_cxr", "finetune_chexpert_linear",
             "finetune_covidx_linear", "finetune_object_cxr_detection", "finetune_rsna_detection",
             "finetune_rsna_linear", "finetune_rsna_segmentation", "finetune_siim_segmentation",
             "finetune_tiny_classification", "finetune_tiny_detection", "finetune_tiny_segmentation"),
    benchmark="medmodal.experiments.cxr.benchmark", speed="medmodal.experiments.cxr.speed", demo="demo",
    aliases=(Alias("pretrain", pretrain_cmd, "cxr pretrain"), Alias("export", export_cmd, "cxr export"),
             Alias("finetune", finetune_cmd, "cxr finetune"),
             Alias("finetune-speed", finetune_speed_cmd, "cxr finetune-speed"),
             Alias("data synth-cxr", synth_cxr_cmd, "cxr synth"), Alias("data cxr-reports", cxr_reports_cmd, "cxr reports"),
             Alias("data synth-downstream", synth_downstream_cmd, "cxr synth-downstream"),
             Alias("data downstream-summary", downstream_summary_cmd, "cxr summary")),
    configs={"pretrain": "medmodal.engine.image_text.config:PretrainRunConfig",
             "finetune": "medmodal.engine.finetune.config:load_finetune_config"},  # the task picks the class
    smoke=(("cxr", "synth", "{out}/data", "-n", "16", "-s", "64", "--workers", "1"),
           ("cxr", "pretrain", "--preset", "pretrain_demo_cpu", "--data", "{out}/data", "--out", "{out}/run",
            *(a for o in ("trainer.stage1_epochs=1", "trainer.stage2_epochs=0", "trainer.progress_bar=false",
                          "data.batch_size=16", "data.max_length=48", "model.freeze=[]",
                          "model.kwargs={image_encoder: resnet18, embed_dim: 32, text_pool_heads: 4, decoder_heads: 4, "
                          "num_clusters: 4, kmeans_activation_cosine: 1.0, decoder_channels: [8, 8], text_model_config: "
                          "{hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 64}}")
              for a in ("--set", o)))),
)
