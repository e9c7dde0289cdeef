"""The curves of `new_surface.py`: production AUC per strategy against human decisions."""
from __future__ import annotations

import numpy as np

STRATEGIES = ("loop", "risk", "random")


def plot(xs: list[int], mean: dict, sd: dict, champ_auc: float, path, policy: str, variant: str,
         targets: list[float], challenger: dict | None = None) -> None:
    """Production AUC (champion after the gate; band: sd over seeds) per strategy, and each
    strategy's challengers dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for z, (s, colour) in enumerate(zip(STRATEGIES, ("tab:blue", "tab:orange", "tab:gray"))):
        # the loop drawn last, on top: it shares the seed rounds with risk order until a promotion
        ax.plot(xs, mean[s], marker="o", ms=3, color=colour, label=s, zorder=3 + len(STRATEGIES) - z)
        ax.fill_between(xs, np.clip(mean[s] - sd[s], 0, 1), np.clip(mean[s] + sd[s], 0, 1), color=colour, alpha=0.2)
        if challenger is not None:
            ax.plot(xs, challenger[s], ls="--", lw=1, color=colour, label=f"{s}: every challenger")
    ax.axhline(champ_auc, ls=":", color="black", lw=1, label="champion before any decision")
    for y in targets:
        ax.axhline(y, ls="--", color="tab:red", lw=0.8)
    ax.set_ylim(top=1.005)
    ax.set_xlabel("human decisions")
    ax.set_ylabel(f"{policy} AUC on unreviewed items\n(model in production after the gate)")
    ax.set_title("New surface: SMS spam, Davidson-only champion" if variant == "new_surface"
                 else "New policy: hate, champion with hate labels hidden")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
