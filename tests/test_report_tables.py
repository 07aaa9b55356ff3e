"""Each likelihood table of the report holds one image set and one pixel space, and says which (on hand-built
inputs with a known answer: models of three pixel spaces, and two image sets that must not share a table)."""

from __future__ import annotations

import pytest

from vaelab.core.errors import ReportError
from vaelab.report.render import Para, Table
from vaelab.report.sections import decoders
from vaelab.report.sections.cells import Inputs
from vaelab.report.sections.inference import inference_blocks, pixel_space
from vaelab.viz.model_figures import model_label

SPACES = {"vae_mse": ("grey", True, False), "vae_bce": ("grey", False, False), "vae_bin": ("binarized", False, False),
          "cvae": ("grey", False, True), "vae_beta": ("dequantized", True, False)}


def record(pixels: str, density: bool, given_label: bool) -> dict:
    number = {"mean": -100.0, "se": 1.0}
    return {"images": 200, "image_set": "exact-200of10000-seed0", "pixels": pixels, "density": density,
            "given_label": given_label, "log_px": number, "elbo": number, "gap": number, "iwae_1": number,
            "exact_converged": 1.0, "exact_max_error": 0.01, "local_images": 50,
            "local_image_set": "exact-50of10000-seed0", "local_gap": number, "approximation_gap": number,
            "amortisation_gap": number}


def inputs(image_sets: dict | None = None, **extra) -> Inputs:
    return Inputs(list(SPACES), {}, {}, {}, {}, [], image_sets or {}, [], **extra)


def test_the_inference_section_gives_each_pixel_space_its_own_table() -> None:
    blocks = inference_blocks(inputs(inference={m: record(*s) for m, s in SPACES.items()}))
    tables = [(b, blocks[i - 1]) for i, b in enumerate(blocks) if isinstance(b, Table) and b.header[1] == "log p(x)"]
    assert len(tables) == len(set(SPACES.values()))          # one table per space: here every model has its own
    for table, title in tables:
        assert isinstance(title, Para)
        members = [m for m in SPACES if model_label(m) in {row[0] for row in table.rows}]
        assert len({SPACES[m] for m in members}) == 1            # the rows share one pixel space ...
        assert pixel_space(record(*SPACES[members[0]])).lower() in title.text.lower()   # ... and the title says it
    assert "not a likelihood" in pixel_space(record(*SPACES["vae_bce"]))
    assert "given the true label" in pixel_space(record(*SPACES["cvae"]))


def test_models_sharing_a_pixel_space_share_its_table() -> None:
    same = {"vae_mse": record("grey", True, False), "vae_sigma": record("grey", True, False)}
    tables = [b for b in inference_blocks(inputs(inference=same)) if isinstance(b, Table) and b.header[1] == "log p(x)"]
    assert len(tables) == 1 and len(tables[0].rows) == 2


def test_a_decoder_table_refuses_two_image_sets() -> None:
    sets = {"vae_mse": {"grey8bit": "likelihood-2000of10000-seed0"}, "vae_beta": {"grey8bit": "likelihood-2000of10000-seed1"}}
    with pytest.raises(ReportError, match="measured on different image sets"):
        decoders.image_set_name(inputs(image_sets=sets), "grey8bit", ["vae_mse", "vae_beta"])
    assert decoders.image_set_name(inputs(image_sets={m: {"grey8bit": "a"} for m in sets}), "grey8bit", list(sets)) == "`a`"


def test_each_decoder_table_reads_one_group_of_one_pixel_space() -> None:
    # A table's numbers come from its own group (one image set, one pixel space per group), or the rate (KL) on
    # the same likelihood set; never from another yardstick's group.
    for _, group, columns in decoders.DECODER_TABLES:
        groups = {key.split(".")[0] for _, key in columns if key}
        assert groups <= {group, "elbo"} and (groups - {group} == set() or group == "grey8bit")


def test_the_claims_are_those_fixed_at_the_commit_the_report_names() -> None:
    # The report says the claims were fixed at CLAIMS_FIXED_AT, before the run that decides them: true only while
    # params.yaml `claims:` is what it was at that commit. A claim changed since is exploratory until a new run.
    import subprocess
    from pathlib import Path

    import yaml

    from vaelab.report.sections.verdicts import CLAIMS_FIXED_AT

    root = Path(__file__).resolve().parents[1]
    then = subprocess.run(["git", "show", f"{CLAIMS_FIXED_AT}:params.yaml"], cwd=root, capture_output=True, text=True)
    if then.returncode != 0:
        pytest.skip(f"commit {CLAIMS_FIXED_AT} is not in this clone (a shallow clone): {then.stderr.strip()}")
    now = yaml.safe_load((root / "params.yaml").read_text())["claims"]
    assert yaml.safe_load(then.stdout)["claims"] == now


def test_a_metric_that_does_not_apply_shows_as_missing_in_the_tables() -> None:
    # A collapsed model's jump ratio is null in metrics/eval: a "—" cell, not an error.
    from vaelab.report.render import MISSING
    from vaelab.report.sections.cells import interval_table

    evals = {"ae_post_as_written": {1: {"continuity": {"jump_ratio": None}}, 2: {"continuity": {"jump_ratio": None}}},
             "vae_bce": {1: {"continuity": {"jump_ratio": 2.0}}, 2: {"continuity": {"jump_ratio": 2.2}}}}
    table = interval_table(evals, list(evals))
    assert table.rows[0][1] == MISSING and table.rows[0][2] != MISSING
