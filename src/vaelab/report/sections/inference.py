"""Section on variational inference made visible (the `inference` stage's exact posteriors and the ELBO's gaps)."""

from __future__ import annotations

from vaelab.report.render import MISSING, Block, Heading, Image, Para, Table
from vaelab.report.sections.cells import Inputs
from vaelab.viz.model_figures import model_label


PIXELS = {"grey": "grey pixels k/255", "dequantized": "dequantised pixels (k + u)/256",
          "binarized": "the fixed binarisation (pixels 0 or 1)"}


def pixel_space(record: dict) -> str:
    """What a model's numbers in metrics/inference.json are a (log-)likelihood of, in words: one table each."""
    pixels = record.get("pixels")
    if pixels is None:
        return "pixels not recorded"
    what = ("a probability of binary pixels" if pixels == "binarized" else "a density on [0, 1]" if record["density"]
            else "a Bernoulli cross-entropy score, not a likelihood of these pixels")
    return f"{PIXELS.get(pixels, pixels)}: {what}" + (", given the true label" if record.get("given_label") else "")


def inference_blocks(inp: Inputs) -> list[Block]:
    if not inp.inference:
        return []
    spaces: dict[str, list[str]] = {}
    for m, r in inp.inference.items():
        spaces.setdefault(pixel_space(r), []).append(m)
    ks = sorted({int(k.split("_")[1]) for r in inp.inference.values() for k in r if k.startswith("iwae_")})

    def ms(r: dict, key: str) -> str:
        v = r.get(key)
        return f"{v['mean']:.2f} ± {v['se']:.2f}" if v else MISSING

    def number(r: dict, key: str) -> str:
        return f"{r[key]:.3g}" if key in r else MISSING

    def rows(names: list[str]) -> list[list[str]]:
        return [[model_label(m), ms(r, "log_px"), ms(r, "elbo"), *(ms(r, f"iwae_{k}") for k in ks), ms(r, "gap"),
                 number(r, "exact_converged"), number(r, "exact_max_error")] for m in names if (r := inp.inference[m])]
    local = [[model_label(m), ms(r, "local_gap"), ms(r, "approximation_gap"), ms(r, "amortisation_gap")]
             for m, r in inp.inference.items()]
    first = next(iter(inp.inference.values()))
    return [
        Heading("Variational inference, seen"),
        Para("The post derives the ELBO as log p(x) − KL(q(z|x) ‖ p(z|x)). With a 2-D latent both sides can be "
             "computed: log p(x) = log ∫ p(x|z) p(z) dz by quadrature on adaptive grids (`vaelab.measures.inference`, checked "
             "against closed forms and brute-force sums in its tests), so the gap log p(x) − ELBO is exactly the KL "
             "to the true posterior the ELBO leaves out. The importance-weighted bounds L_K (Burda et al. 2015) climb "
             "from the ELBO (K = 1) towards log p(x). Nats per image, mean ± standard error over the images, first "
             "seed; a conditional model is scored given the true label. From `metrics/inference.json`."),
        Para(f"**On image set `{first.get('image_set', first['images'])}`** ({first['images']} test images), with the "
             "quadrature's converged share and largest error estimate (nats). One table per pixel space: numbers "
             "of different pixels, or of a decoder that is no likelihood of them, are not compared."),
        *(block for space, names in spaces.items() for block in (
            Para(f"*{space[0].upper()}{space[1:]}.*"),
            Table(["model", "log p(x)", "ELBO", *(f"L_{k}" for k in ks), "gap = KL(q ‖ p(z|x))", "converged",
                   "largest error"], rows(names)))),
        Para(f"**The gap split, on image set `{first.get('local_image_set', first['local_images'])}`** (the first "
             f"{first['local_images']} of those): the gap on these images is the sum of the **approximation gap** "
             "log p(x) − ELBO(q*), where q* is the best Gaussian for each image alone (Adam steps on its own ELBO), "
             "and the **amortisation gap** ELBO(q*) − ELBO(q), what sharing one encoder across all images costs "
             "(Cremer, Li & Duvenaud 2018)."),
        Table(["model", "gap on these images", "approximation gap", "amortisation gap"], local),
        *(Image(f"figures/inference/{m}.png", f"{model_label(m)} posteriors") for m in inp.inference),
        Para("Filled: the true posterior p(z|x) of four test digits; lines: the encoder's Gaussian q(z|x). Where the "
             "lines miss the filled region, the ELBO pays the KL above.", italic=True),
    ]
