"""Section on the quadrant completion (the `quadrants` stage: baseline network and CVAE)."""

from __future__ import annotations

from vaelab.report.render import MISSING, Block, Heading, Image, Para, Table
from vaelab.report.sections.cells import Inputs


def quadrant_blocks(inp: Inputs) -> list[Block]:
    """Sohn et al.'s structured-output task: −log p(missing | given) of the baseline network and the CVAE beside
    Pyro's reproduction (metrics/quadrants.json, figures/quadrants/)."""
    q = inp.quadrants
    settings = sorted(k for k in q if k.startswith("given_"))
    if not settings:
        return []
    anchor = q.get("anchor_pyro", {})

    def pm(r: dict, key: str) -> str:
        return f"{r[key]:.2f} ± {r[key + '_se']:.2f}" if key in r else MISSING

    rows = [[k.split("_")[1], pm(q[k], "baseline_nll"), pm(q[k], "cvae_nll"), pm(q[k], "cvae_neg_elbo"),
             f"{anchor[k]['baseline_nll']} / {anchor[k]['cvae_nll']}" if k in anchor else MISSING] for k in settings]
    return [Heading("Structured output: completing a digit"),
            Para("The post's promised follow-up cites Sohn, Lee & Yan (2015), whose task is this: given one, two or "
                 "three quadrants of a test digit, predict the rest. A deterministic baseline network predicts one "
                 "completion, the average of all that fit; a CVAE (prior network p(z | given) on top of the baseline, "
                 "recognition network q(z | given, missing), generation network p(missing | given, z)) predicts a "
                 "distribution over them. Both are scored by −log p(missing pixels | given pixels) in nats per image "
                 "with a Bernoulli on grey pixels, as Pyro's public reproduction (MLP 500-500; numbers from its "
                 f"`examples/cvae`), whose baseline / CVAE numbers are in the last column. The CVAE's value is "
                 f"estimated by importance sampling with S = {q.get('S')} samples from q(z | given, missing) on the "
                 f"first {q.get('images')} test images (± the standard error over images); its negative ELBO is shown "
                 "too, since Pyro's CVAE number is a sampled negative ELBO. One seed "
                 f"({q.get('seed')})."),
            Table(["given quadrants", "baseline", "CVAE, importance-sampled", "CVAE, −ELBO",
                   "Pyro: baseline / CVAE"], rows),
            *(Image(f"figures/quadrants/given{k.split('_')[1]}.png", f"quadrant completion, {k}") for k in settings),
            Para("Columns: the input (missing pixels grey), the truth, the baseline's prediction, CVAE samples.",
                 italic=True)]
