"""CMC curves of one or several runs in one PNG (matplotlib's Agg canvas, no pyplot state).

Example:

>>> plot_cmc({"run-a fusion": results["fusion"]["cmc"], "run-a embedding": results["embedding"]["cmc"]}, "cmc.png")
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from keras_msreid.utils.atomic import atomic_path


def plot_cmc(curves, path, title="CMC", size_inches=(6.0, 4.5), dpi=100):
    """Plots `curves` (label -> rank-1.. accuracies in [0, 1]) and writes a PNG atomically."""
    if not curves:
        raise ValueError("plot_cmc needs at least one curve")
    figure = Figure(figsize=size_inches, dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label, cmc in curves.items():
        cmc = np.asarray(cmc, np.float64)
        if cmc.ndim != 1 or cmc.size == 0 or np.any((cmc < 0) | (cmc > 1)):
            raise ValueError(f"curve {label!r} must be a non-empty list of accuracies in [0, 1]")
        ranks = np.arange(1, cmc.size + 1)
        axes.plot(ranks, 100 * cmc, marker="o", markersize=3,
                  label=f"{label} (rank-1 {100 * cmc[0]:.1f}%)")
    axes.set(xlabel="rank", ylabel="matching rate (%)", title=title, ylim=(0, 100))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png")
