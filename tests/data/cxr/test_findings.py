"""Findings from MeSH terms and from negation-aware keywords."""

from medmodal.data.cxr.findings import (LABEL_NAMES, Finding, keyword_findings, labels_from_mesh, labels_of,
                                        mesh_findings, report_findings)


def test_mesh_terms_with_locations():
    found = mesh_findings("Opacity/lung/base/left;Pleural Effusion/right/small;Cardiomegaly/mild;"
                          "Calcified Granuloma/lung/lingula;Thoracic Vertebrae/degenerative")
    assert Finding("Lung Opacity", "left", "lower") in found
    assert Finding("Pleural Effusion", "right", "", "mild") in found
    assert Finding("Cardiomegaly", severity="mild") in found
    assert Finding("Nodule", "left", "middle", kind="calcified") in found  # lingula: left, middle zone
    assert Finding("Degenerative Spine") in found  # drawn, not a label
    assert len(found) == 5
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


def test_frequent_iu_mesh_terms_are_drawn_findings_with_their_place():
    cases = {
        "Lung/hyperdistention/mild": Finding("Hyperinflation", severity="mild"),
        "Pulmonary Disease, Chronic Obstructive": Finding("Hyperinflation"),
        "Diaphragm/bilateral/flattened": Finding("Hyperinflation", "bilateral"),
        "Lung/hypoinflation": Finding("Low Lung Volumes"),
        "Atherosclerosis/aorta": Finding("Aortic Calcification"),
        "Calcinosis/aorta": Finding("Aortic Calcification"),
        "Aorta, Thoracic/tortuous/mild": Finding("Tortuous Aorta", severity="mild"),
        "Thoracic Vertebrae/degenerative/multiple": Finding("Degenerative Spine", multiple=True),
        "Osteophyte/thoracic vertebrae": Finding("Degenerative Spine"),
        "Scoliosis/thoracic vertebrae/right": Finding("Scoliosis", "right"),
        "Kyphosis/severe": Finding("Vertebral Deformity", severity="severe"),
        "Cicatrix/lung/apex/bilateral": Finding("Scarring", "bilateral", "upper"),
        "Diaphragm/left/elevated": Finding("Elevated Hemidiaphragm", "left"),
        "Diaphragmatic Eventration/right": Finding("Elevated Hemidiaphragm", "right"),
        "Hernia, Hiatal/large": Finding("Hiatal Hernia", severity="severe"),
        "Fractures, Bone/ribs/left/multiple/healed": Finding("Rib Fracture", "left", multiple=True),
        "Mediastinum/prominent": Finding("Widened Mediastinum"),
        "Markings/lung/interstitial/prominent": Finding("Increased Markings", kind="interstitial"),
        "Calcinosis/lung/hilum/lymph nodes/right": Finding("Calcification", "right", "middle", kind="nodes"),
        "Granulomatous Disease": Finding("Nodule", multiple=True, kind="calcified"),
    }
    for mesh, expected in cases.items():
        assert mesh_findings(mesh) == [expected], mesh
    assert mesh_findings("Calcinosis/ribs") == [] and mesh_findings("Fractures, Bone/shoulder/right") == []
    assert mesh_findings("Aorta") == [] and mesh_findings("Technical Quality of Image Unsatisfactory") == []
    # drawn, never labels: labels.csv keeps LABEL_NAMES
    labels = labels_of(mesh_findings("Lung/hyperdistention;Atherosclerosis/aorta;Scoliosis"))
    assert list(labels) == list(LABEL_NAMES) and set(labels.values()) == {0}


def test_keywords_of_the_drawn_extra_findings_respect_negation():
    text = ("The lungs are hyperinflated. The aorta is tortuous. Degenerative changes of the thoracic spine. "
            "Old healed left rib fractures. Small hiatal hernia. Elevated right hemidiaphragm.")
    found = {f.name: f for f in keyword_findings(text)}
    assert set(found) == {"Hyperinflation", "Tortuous Aorta", "Degenerative Spine", "Rib Fracture", "Hiatal Hernia",
                          "Elevated Hemidiaphragm"}
    assert found["Rib Fracture"].side == "left" and found["Elevated Hemidiaphragm"].side == "right"
    negated = ("No hyperinflation. No acute rib fracture. No hiatal hernia. No scoliosis. "
               "Without widening of the mediastinum. No evidence of emphysema.")
    assert keyword_findings(negated) == []
    assert report_findings("No Indexing", negated) == []
