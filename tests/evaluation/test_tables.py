"""Per-subset tables, CSV round trip and heatmap, on synthetic rows with known means."""

import math

import numpy as np
import pytest

from medmodal.data.missing import all_subsets, subset_name
from medmodal.data.volumes.spec import BRATS_MODALITIES
from medmodal.evaluation.plots import subset_heatmap
from medmodal.evaluation.tables import (display_subset, markdown_subset_table, read_rows_csv, subset_table,
                                        write_rows_csv)

REGIONS = ("WT", "TC", "ET")
SUBSETS = all_subsets(4)


def value(case: int, s: int, r: int) -> float:
    """Dice of case ``case`` under subset number ``s`` for region number ``r``."""
    return 0.3 + 0.02 * s + 0.1 * r + 0.1 * case


@pytest.fixture
def rows():
    out = []
    for case in (0, 1):
        for s, mask in enumerate(SUBSETS):
            row = {"case_id": f"case{case}", "subset": subset_name(mask, BRATS_MODALITIES)}
            row.update({f"Dice_{r}": value(case, s, i) for i, r in enumerate(REGIONS)})
            row.update({f"HD95_{r}": 10.0 * s + i + case for i, r in enumerate(REGIONS)})
            out.append(row)
    return out


def expected_mean(s: int, r: int) -> float:
    return (value(0, s, r) + value(1, s, r)) / 2


def test_subset_table_means_and_order(rows):
    table = subset_table(rows, BRATS_MODALITIES, REGIONS)
    assert len(table) == 16
    assert [e["mask"] for e in table[:15]] == SUBSETS
    for s, entry in enumerate(table[:15]):
        assert entry["cases"] == 2
        for i, r in enumerate(REGIONS):
            assert entry[r] == pytest.approx(expected_mean(s, i))
    average = table[-1]
    assert average["subset"] == "Average" and average["cases"] == 2
    for i, r in enumerate(REGIONS):
        assert average[r] == pytest.approx(np.mean([expected_mean(s, i) for s in range(15)]))


def test_average_is_mean_over_subsets_not_rows(rows):
    # drop case1 from the 4 single-sequence subsets: they now hold one case, the others two
    kept = [r for r in rows if not (r["case_id"] == "case1" and "+" not in r["subset"])]
    table = subset_table(kept, BRATS_MODALITIES, REGIONS)
    assert [e["cases"] for e in table[:15]] == [1] * 4 + [2] * 11
    means = [value(0, s, 0) for s in range(4)] + [expected_mean(s, 0) for s in range(4, 15)]
    assert table[-1]["WT"] == pytest.approx(np.mean(means))
    assert table[-1]["WT"] != pytest.approx(np.mean([r["Dice_WT"] for r in kept]))


def test_subset_names_matched_regardless_of_order(rows):
    reordered = [dict(r, subset="+".join(reversed(r["subset"].split("+")))) for r in rows]
    assert subset_table(reordered, BRATS_MODALITIES, REGIONS) == subset_table(rows, BRATS_MODALITIES, REGIONS)


def test_missing_subset_gives_nan_and_dash(rows):
    kept = [r for r in rows if r["subset"] != "flair"]
    table = subset_table(kept, BRATS_MODALITIES, REGIONS)
    assert table[0]["cases"] == 0 and math.isnan(table[0]["WT"])
    assert table[-1]["WT"] == pytest.approx(np.mean([expected_mean(s, 0) for s in range(1, 15)]))
    first = markdown_subset_table(kept, BRATS_MODALITIES, REGIONS).splitlines()[2]
    assert first.split("|")[5:8] == [" - ", " - ", " - "]


def parse_markdown(text):
    lines = text.splitlines()
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in lines]


def test_markdown_dice_table(rows):
    cells = parse_markdown(markdown_subset_table(rows, BRATS_MODALITIES, REGIONS, metric="Dice"))
    assert cells[0] == ["FLAIR", "T1", "T1ce", "T2", "WT", "TC", "ET"]
    body = cells[2:]
    assert len(body) == 16  # 15 subsets + Average
    for s, (mask, line) in enumerate(zip(SUBSETS, body[:15])):
        assert line[:4] == ["●" if p else "○" for p in mask]
        assert [float(v) for v in line[4:]] == pytest.approx([100 * expected_mean(s, i) for i in range(3)], abs=0.006)
    assert body[0][:4] == ["●", "○", "○", "○"] and body[14][:4] == ["●"] * 4
    assert body[15][0] == "Average"
    wt_average = 100 * np.mean([expected_mean(s, 0) for s in range(15)])
    assert body[15][4] == f"{wt_average:.2f}"


def test_markdown_hd95_table(rows):
    cells = parse_markdown(markdown_subset_table(rows, BRATS_MODALITIES, REGIONS, metric="HD95", scale=1, digits=1))
    # HD95 for subset s, region i is mean(10 s + i, 10 s + i + 1) = 10 s + i + 0.5
    assert cells[2 + 3][4:] == ["30.5", "31.5", "32.5"]
    assert cells[-1][4] == f"{np.mean([10 * s + 0.5 for s in range(15)]):.1f}"
    default_scale = parse_markdown(markdown_subset_table(rows, BRATS_MODALITIES, REGIONS, metric="HD95"))
    assert default_scale[5][4] == "30.50"


def test_generic_number_of_sequences():
    modalities = ("ct", "pet")
    rows = [{"case_id": "a", "subset": s, "Dice_T": d} for s, d in (("ct", 0.2), ("pet", 0.4), ("ct+pet", 0.6))]
    cells = parse_markdown(markdown_subset_table(rows, modalities, ("T",)))
    assert [c[:2] for c in cells[2:5]] == [["●", "○"], ["○", "●"], ["●", "●"]]
    assert [c[2] for c in cells[2:]] == ["20.00", "40.00", "60.00", "40.00"]


def test_unknown_subset_rejected(rows):
    with pytest.raises(ValueError, match="bad subset"):
        subset_table(rows + [dict(rows[0], subset="flair+pet")], BRATS_MODALITIES, REGIONS)


def test_csv_roundtrip(rows, tmp_path):
    rows[3]["Dice_ET"] = float("nan")
    path = write_rows_csv(rows, tmp_path / "out" / "subset_metrics.csv")
    assert path.read_text().splitlines()[0] == "case_id,subset,Dice_WT,Dice_TC,Dice_ET,HD95_WT,HD95_TC,HD95_ET"
    back = read_rows_csv(path)
    assert len(back) == len(rows)
    for original, loaded in zip(rows, back):
        assert loaded.keys() == original.keys()
        for key, v in original.items():
            if isinstance(v, float) and math.isnan(v):
                assert math.isnan(loaded[key])
            else:
                assert loaded[key] == v  # exact: floats are written with repr
    assert not list(path.parent.glob(".tmp-*"))


def test_read_rows_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_rows_csv(tmp_path / "nope.csv")
    (tmp_path / "bad.csv").write_text("id,Dice_WT\na,0.5\n")
    with pytest.raises(ValueError, match="columns"):
        read_rows_csv(tmp_path / "bad.csv")


def test_display_subset():
    assert display_subset((True, False, True, False), BRATS_MODALITIES) == "FLAIR+T1ce"


@pytest.mark.parametrize("metric", ["Dice", "HD95"])
def test_heatmap_writes_png(rows, tmp_path, metric):
    rows = [r for r in rows if r["subset"] != "t2"]  # a missing subset must not break the plot
    path = subset_heatmap(rows, BRATS_MODALITIES, REGIONS, tmp_path / f"{metric}.png", metric=metric, title="demo")
    assert path == tmp_path / f"{metric}.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not list(tmp_path.glob(".tmp-*"))


def test_mean_std_and_csv_text():
    from medmodal.evaluation.tables import csv_text, mean_std

    assert mean_std([]) == "-" and mean_std([float("nan")]) == "-"
    assert mean_std([0.5]) == "0.5" and mean_std([1.0, 3.0]) == "2.0 ± 1.0"  # population std by default
    assert mean_std([0.5, 0.7], scale=100, ddof=1) == "60.0 ± 14.1"  # sample std: 0.1414 x 100
    assert mean_std([1.0, 3.0, float("nan")], digits=2, std=False) == "2.00"
    assert csv_text([{"a": 1}, {"b": 2, "a": 3}]) == "a,b\n1,\n3,2\n"
