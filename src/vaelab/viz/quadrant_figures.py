"""The quadrant-completion figure (as in Sohn, Lee & Yan 2015 and Pyro's ``examples/cvae`` plots): for each test
digit, the input (the given quadrants, the missing ones grey), the truth, the baseline network's completion and
several CVAE completions, one row per digit. Pure, in the style of :mod:`vaelab.viz.images`: arrays in, a Figure
out (the tiles come from :func:`vaelab.studies.quadrants.figure_tiles`).
"""

from __future__ import annotations

from matplotlib.figure import Figure

from vaelab.data.mnist import IMAGE_SIDE
from vaelab.studies.quadrants import GIVEN_QUADRANTS
from vaelab.viz import images

PAD = 2  # pixels between tiles


def column_labels(samples: int) -> list[str]:
    return ["input", "truth", "baseline", *(f"CVAE {i + 1}" for i in range(samples))]


@images.styled
def completions(tiles, title: str) -> Figure:
    """[rows, 3 + k, 784] tiles (input, truth, baseline, k CVAE samples) on a grid, one test digit per row."""
    t = images.as_array(tiles)
    rows, cols = t.shape[:2]
    if cols < 4:
        raise ValueError(f"tiles: expected [rows, 3 + k, 784] with k >= 1 CVAE samples, got shape {t.shape}")
    fig = Figure(figsize=(0.62 * cols + 0.9, 0.62 * rows + 0.9), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[3, cols - 3])
    for ax, part in ((left, t[:, :3]), (right, t[:, 3:])):
        n = part.shape[1]
        ax.imshow(images.tile(part.reshape(rows * n, -1), n, pad=PAD), vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_xticks([(IMAGE_SIDE + PAD) * (i + 0.5) for i in range(n)])
        ax.set_yticks([])
        ax.tick_params(length=0)
    left.set_xticklabels(column_labels(cols - 3)[:3])
    right.set_xticklabels(column_labels(cols - 3)[3:])
    right.set_xlabel("z ~ p(z | given quadrants), pixel means")
    fig.suptitle(title)
    return fig


def setting_figures(results: list, samples: int) -> dict[str, Figure]:
    """``given<k>``: each setting's completions, titled with its two NLLs (results of
    :func:`vaelab.studies.quadrants.run_setting`)."""
    figs = {}
    for r in results:
        m = r.metrics
        title = (f"Given the {' + '.join(GIVEN_QUADRANTS[r.given])} quadrant{'s' * (r.given > 1)}\n"
                 f"−log p(missing | given): baseline {m['baseline_nll']:.1f}, CVAE {m['cvae_nll']:.1f} nats "
                 f"(S = {samples})")
        figs[f"given{r.given}"] = completions(r.tiles, title)
    return figs
