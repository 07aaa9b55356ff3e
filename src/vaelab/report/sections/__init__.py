"""The study's report, laid out as blocks (:mod:`vaelab.report.render`): one module per section, each turning the
per-seed numbers of :class:`~vaelab.report.sections.cells.Inputs` into headings, captions and tables.
Pure: the report stage reads the pipeline's outputs into :class:`Inputs` and renders what :func:`report_blocks`
returns."""

from __future__ import annotations

from vaelab.report.render import MISSING, Block, Contents, Heading, Image, Para
from vaelab.report.sections.cells import Inputs, interval_table, seeds_sentence
from vaelab.report.sections.decoders import decoder_blocks
from vaelab.report.sections.figures import LOSS_CAPTION, figure_blocks
from vaelab.report.sections.inference import inference_blocks
from vaelab.report.sections.measured import measured_blocks
from vaelab.report.sections.post_ae import post_ae_blocks
from vaelab.report.sections.quadrants import quadrant_blocks
from vaelab.report.sections.sbi import sbi_blocks
from vaelab.report.sections.tuning import tuning_blocks
from vaelab.report.sections.verdicts import claims_blocks

__all__ = ["Inputs", "report_blocks"]


def report_blocks(inp: Inputs) -> list[Block]:
    blocks: list[Block] = [
        Para("Written by the `report` stage of `dvc repro`; every picture and number below is an output of the "
             f"pipeline. {seeds_sentence(inp.seeds)} "
             "Pictures show the first seed, numbers are the mean ± the half-width of a 95% Student-t interval over "
             "seeds (per-seed values: `metrics/train/<model>.json`, `metrics/eval/<model>.json`), every number of "
             f"one metric to the same decimal places. Likelihoods are in nats per image. {MISSING} marks a number or "
             "figure that does not apply to a model (an AE has no KL term and no prior to sample) or that its "
             "evaluation does not measure."),
        Contents(),
        *claims_blocks(inp.verdicts, inp.forks, inp.models, inp.robust),
        Heading("The data"), Image("study/data.png", "MNIST training images"),
        *figure_blocks(inp),
        *post_ae_blocks(inp),
        *measured_blocks(inp),
        *decoder_blocks(inp),
        *inference_blocks(inp),
        *quadrant_blocks(inp),
        *sbi_blocks(inp),
        *tuning_blocks(inp),
        Heading("Training"), Image("study/test_loss.png", "test loss per epoch"), Para(LOSS_CAPTION, italic=True),
        Heading("Final losses"),
        Para("Read from `metrics/train/<model>.json` (last epoch). Each model's own loss on its own pixels (grey, "
             "dequantised or binarised, `models.<name>.data`): a row compares numbers of different quantities across "
             "columns. `test.mse` is the squared error against the model's own pixels too (a binarised model's "
             "against binary targets); the one squared error on the same grey test images for every model is "
             "`reconstruction.mse_per_image` (\"Evaluation\")."),
        interval_table(inp.train, inp.models),
        Heading("Evaluation"),
        Para("Read from `metrics/eval/<model>.json`. `reconstruction.*`: squared error of the decoded posterior "
             "mean; `elbo.*`, `iwae.nll`: nats per image under the model's own decoder (not comparable across "
             "decoders); `latent.*`: kNN digit accuracy, silhouette and trustworthiness of the test codes; `grid.confident_fraction`: "
             "share of the decoded latent grid the judge calls a digit with confidence. Conditional models are "
             "scored given the true label (`elbo.*`, `iwae.nll_given_y` bound −log p(x|y)); `iwae.nll_marginal`, "
             "−log p(x) over the ten labels, is the one comparable with `iwae.nll`; `conditional.accuracy`: share "
             "of samples drawn for label k that the judge calls k"
             + (f" (judge test accuracy {inp.judge_accuracy:.4f})." if inp.judge_accuracy is not None else ".")),
        interval_table(inp.evals, inp.models),
    ]
    return blocks
