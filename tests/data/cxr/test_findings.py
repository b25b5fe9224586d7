"""Findings from MeSH terms and from negation-aware keywords."""

from medmodal.data.cxr.findings import (Finding, keyword_findings, labels_from_mesh, mesh_findings,
                                        report_findings)


def test_mesh_terms_with_locations():
    found = mesh_findings("Opacity/lung/base/left;Pleural Effusion/right/small;Cardiomegaly/mild;"
                          "Calcified Granuloma/lung/lingula;Thoracic Vertebrae/degenerative")
    assert Finding("Lung Opacity", "left", "lower") in found
    assert Finding("Pleural Effusion", "right", "", "mild") in found
    assert Finding("Cardiomegaly", severity="mild") in found
    assert Finding("Nodule", "left", "middle", kind="calcified") in found  # lingula: left, middle zone
    assert len(found) == 4
    assert mesh_findings("normal") == [] and mesh_findings("No Indexing") is None and mesh_findings("") is None
    assert mesh_findings("Costophrenic Angle/left/blunted") == [Finding("Pleural Effusion", "left", "lower", "mild")]


def test_keywords_respect_negation():
    assert keyword_findings("No pneumothorax.") == []
    assert keyword_findings("No focal infiltrate, pleural effusion, or pneumothorax.") == []
    found = keyword_findings("No pneumothorax, but there is a small left pleural effusion. Heart is enlarged.")
    assert {f.name for f in found} == {"Pleural Effusion", "Cardiomegaly"}
    effusion = next(f for f in found if f.name == "Pleural Effusion")
    assert effusion.side == "left" and effusion.severity == "mild"
    assert [f.name for f in keyword_findings("No change in the cardiomegaly.")] == ["Cardiomegaly"]
    assert keyword_findings("The heart is not enlarged. Lungs clear.") == []
    devices = keyword_findings("There are XXXX sternotomy XXXX identified.")
    assert devices == [Finding("Support Devices", kind="sternotomy")]


def test_report_findings_prefers_mesh_and_labels():
    assert report_findings("normal", "Small right pneumothorax.") == []  # MeSH wins when indexed
    assert [f.name for f in report_findings("No Indexing", "Small right pneumothorax.")] == ["Pneumothorax"]
    sternotomy = report_findings("Surgical Instruments", "Median sternotomy wires are intact.")
    assert sternotomy == [Finding("Support Devices", kind="sternotomy")]
    labels = labels_from_mesh("Pulmonary Atelectasis/base/left;Pneumonia")
    assert labels["Atelectasis"] == 1 and labels["Consolidation"] == 1 and labels["Edema"] == 0
    assert set(labels_from_mesh("No Indexing").values()) == {None}
