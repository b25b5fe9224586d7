"""FINDINGS and IMPRESSION of a free-text radiology report (MIMIC-CXR ``.txt`` files).

The rules follow the behaviour of MIT-LCP's ``section_parser.py`` (mimic-cxr repository,
``txt/``), which MGCA / CM-CGNS run through ``create_section_files.py``; written anew here:

1. A section starts at a header: at the start of a line (after optional spaces), an
   upper-case name of letters, digits, spaces and ``( ) / , & ' -``, then a colon, e.g.
   `` FINDINGS:``, ``IMPRESSION:``, ``FINDINGS AND IMPRESSION:``. The section runs to the next
   header. Text before the first header is the preamble (``FINAL REPORT`` ...).
2. Header names are lower-cased, their spaces collapsed, and mapped:
   * to ``impression``: ``impression(s)``, ``conclusion(s)``, and every name containing
     "impression" (so ``findings and impression`` / ``findings/impression`` count as IMPRESSION,
     as MIT-LCP does), plus the misspellings seen in MIMIC-CXR (:data:`IMPRESSION_NAMES`);
   * to ``findings``: ``finding(s)``, misspellings (:data:`FINDINGS_NAMES`), any other name
     containing "finding", and headers that describe the views of the study instead of naming
     a section (``CHEST, PA AND LATERAL:``, ``PORTABLE AP:``, ``TWO VIEWS:``; :data:`VIEW_HEADER`);
   * anything else (indication, history, comparison, technique, examination, notification,
     recommendation, wet read, addendum ...) is not used.
3. Empty FINDINGS / IMPRESSION sections are ignored (a view header directly followed by
   another header is a title, not a section). When a kind appears more than once, the last
   non-empty one is kept (MIT-LCP's ``create_section_files.py`` takes the last occurrence).
4. Whitespace (line breaks included) is collapsed to single spaces.
5. Not applied: MIT-LCP's per-study exceptions (about 30 hard-coded study ids) and its
   ``last_paragraph`` fallback for reports without sections; the CM-CGNS / MGCA pre-training
   uses only IMPRESSION and FINDINGS, so such reports are dropped and counted by the reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z0-9 ()/,&'-]*?)[ \t]*:", re.MULTILINE)
IMPRESSION_NAMES = frozenset({
    "impression", "impressions", "conclusion", "conclusions",
    "impresson", "imprression", "imoression", "impressoin", "imprssion", "impresion", "imperssion", "mpression",
    "impession", "impressio", "imression", "impresssion",
})
FINDINGS_NAMES = frozenset({
    "findings", "finding", "findins", "findindgs", "findgings", "findngs", "findnings", "finidngs", "fidings",
    "findigns", "fingings",
})
#: Headers that describe the views of the study; their text is the findings (MIT-LCP's rule).
VIEW_HEADER = re.compile(r"\b(chest|portable|pa and lat(eral)?|lateral and pa|ap and lateral|lateral and ap|"
                         r"frontal( and| view| upright| semi-upright)|two views|one view|pa view|ap view|"
                         r"lateral view|bone window|ribs)\b")


@dataclass
class Sections:
    """Extracted sections (``""`` when absent) and every header name found, normalised."""

    findings: str
    impression: str
    headers: list[str]


def section_kind(name: str) -> str | None:
    """``"impression"``, ``"findings"`` or ``None`` for a header name (rule 2)."""
    name = " ".join(name.lower().split())
    if name in IMPRESSION_NAMES or "impression" in name:
        return "impression"
    if name in FINDINGS_NAMES or "finding" in name:
        return "findings"
    if VIEW_HEADER.search(name):
        return "findings"
    return None


def extract_sections(text: str) -> Sections:
    """FINDINGS and IMPRESSION of a report, by the rules of the module docstring."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n")
    matches = list(_HEADER.finditer(text))
    found: dict[str, str] = {}
    headers = []
    for i, match in enumerate(matches):
        name = " ".join(match.group(1).lower().split())
        headers.append(name)
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        body = " ".join(text[match.end():end].split())
        kind = section_kind(name)
        if kind is not None and body:
            found[kind] = body  # the last non-empty one wins
    return Sections(found.get("findings", ""), found.get("impression", ""), headers)
