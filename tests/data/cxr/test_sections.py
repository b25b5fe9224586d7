"""FINDINGS / IMPRESSION extraction from MIMIC-style report text."""

from medmodal.data.cxr.sections import extract_sections, section_kind
from tests.data.cxr.conftest import MIMIC_REPORTS


def test_standard_report():
    s = extract_sections(MIMIC_REPORTS[("10000001", "50000001")])
    assert s.findings == ("There is no focal consolidation, pleural effusion or pneumothorax. The "
                          "cardiomediastinal silhouette is normal.")
    assert s.impression == "No acute cardiopulmonary process."
    assert s.headers == ["examination", "indication", "comparison", "findings", "impression"]


def test_header_variants():
    assert section_kind("IMPRESSON") == "impression" and section_kind("Conclusion") == "impression"
    assert section_kind("FINDINGS AND IMPRESSION") == "impression"  # as MIT-LCP
    assert section_kind("FINDNGS") == "findings" and section_kind("CHEST, PA AND LATERAL") == "findings"
    assert section_kind("PORTABLE AP") == "findings"
    assert section_kind("INDICATION") is None and section_kind("COMPARISON") is None
    s = extract_sections(MIMIC_REPORTS[("10000004", "50000005")])
    assert s.findings == "The lungs are clear. Heart size is normal." and s.impression == ""


def test_no_sections_and_last_non_empty_wins():
    assert extract_sections(MIMIC_REPORTS[("10000002", "50000003")]).findings == ""
    text = " FINDINGS:  First look.\n IMPRESSION:\n FINDINGS:  Second look.\n IMPRESSION:  Done.\n"
    s = extract_sections(text)
    assert s.findings == "Second look." and s.impression == "Done."
    title = " CHEST, PA LATERAL:\n\n INDICATION:  Cough.\n IMPRESSION:  Clear.\n"
    assert extract_sections(title).findings == ""  # an empty view header is a title, not a section
