"""sbibm's published C2ST of NPE on the study's four tasks: the benchmark's anchor, cited beside vaelab's own run.

Source: the results table of Lueckmann et al., "Benchmarking Simulation-Based Inference" (AISTATS 2021), file
``benchmarking_sbi/results/main_paper.csv`` of the GitHub repository ``sbi-benchmark/results`` (the file sbibm's
``get_results`` reads), commit 2a49a5797d7ac6b1c8873f8ee01671713616656b, SHA-256 :data:`SOURCE_SHA256`. Rows with
``algorithm == "NPE"``, column ``C2ST``, one value per observation 1-10 (10,000 posterior draws against 10,000
reference draws each). Their means are the paper's Fig. 2 values (two moons 0.725 / 0.606 / 0.542 and SLCP
0.975 / 0.901 / 0.831 at 10^3 / 10^4 / 10^5 simulations). Keeping the observations lets the report compare on
exactly the observations the study scores.
"""

from __future__ import annotations

SOURCE = "sbi-benchmark/results, benchmarking_sbi/results/main_paper.csv (Lueckmann et al. 2021)"
SOURCE_SHA256 = "0bc7708b0350b962cbfebe7ba7ca84737798a10844993790191c470bb1b03430"

NPE_C2ST_PER_OBSERVATION: dict[str, dict[int, tuple[float, ...]]] = {
    "gaussian_linear": {
        1000: (0.7069, 0.67385, 0.69825, 0.7581, 0.6623, 0.64925, 0.66515, 0.7125, 0.64645, 0.7722),
        10000: (0.56475, 0.5308, 0.53445, 0.59175, 0.5233, 0.5318, 0.5339, 0.61955, 0.5341, 0.5575),
        100000: (0.5056, 0.50155, 0.5096, 0.5094, 0.5044, 0.5056, 0.5084, 0.51145, 0.5062, 0.4979),
    },
    "two_moons": {
        1000: (0.66635, 0.6958, 0.6771, 0.6996, 0.74755, 0.7105, 0.8045, 0.75055, 0.71885, 0.78025),
        10000: (0.5421, 0.57055, 0.64625, 0.67445, 0.58765, 0.5764, 0.617, 0.5988, 0.6164, 0.63425),
        100000: (0.5177, 0.5145, 0.55825, 0.51355, 0.5243, 0.5423, 0.5642, 0.58355, 0.54205, 0.5565),
    },
    "gaussian_mixture": {
        1000: (0.7156, 0.76045, 0.74655, 0.7348, 0.7235, 0.6876, 0.7272, 0.72255, 0.7271, 0.7694),
        10000: (0.6644, 0.6052, 0.6395, 0.62975, 0.6785, 0.68015, 0.6529, 0.69895, 0.67595, 0.6798),
        100000: (0.5791, 0.56045, 0.5544, 0.54865, 0.5345, 0.5374, 0.5629, 0.5585, 0.54315, 0.5754),
    },
    "slcp": {
        1000: (0.98805, 0.9754, 0.9646, 0.98535, 0.96595, 0.96015, 0.99245, 0.9891, 0.96075, 0.97055),
        10000: (0.9444, 0.9376, 0.7988, 0.916, 0.84905, 0.8832, 0.9495, 0.89845, 0.9319, 0.89725),
        100000: (0.91545, 0.90005, 0.736, 0.8191, 0.8197, 0.83165, 0.87025, 0.8115, 0.7988, 0.81245),
    },
}


def npe_c2st(task: str, budget: int, observations: list[int]) -> float | None:
    """The mean of sbibm's NPE C2ST over ``observations`` at ``budget`` simulations (None where it has none)."""
    values = NPE_C2ST_PER_OBSERVATION.get(task, {}).get(budget)
    if values is None:
        return None
    return sum(values[k - 1] for k in observations) / len(observations)
