"""Figures drawn from several threads at once (a retrain's report beside a UI chart in `serve`):
matplotlib is not thread-safe, so every drawing function takes `core.plotting`'s lock."""
from __future__ import annotations

import contextlib
import threading

import numpy as np

import core.plotting
from evaluation.plots import reliability_png
from models.metrics import plot_reliability


def _draw_from_threads(tmp_path, n_threads: int = 4, rounds: int = 6) -> list[BaseException]:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(3), size=400)
    y = rng.integers(0, 3, size=400)
    errors: list[BaseException] = []
    start = threading.Barrier(n_threads)

    def work(k: int) -> None:
        start.wait()
        try:
            for r in range(rounds):
                plot_reliability(proba, y, str(tmp_path / f"rel-{k}-{r}.png"))
                assert reliability_png(proba, y)[:8] == b"\x89PNG\r\n\x1a\n"
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_figures_drawn_from_several_threads_at_once_all_succeed(tmp_path):
    assert _draw_from_threads(tmp_path) == []
    assert len(list(tmp_path.glob("rel-*.png"))) == 4 * 6


def test_without_the_lock_concurrent_drawing_breaks(tmp_path, monkeypatch):
    """What the lock is for: the same work without it fails (so the test above can fail)."""
    monkeypatch.setattr(core.plotting, "_LOCK", contextlib.nullcontext())
    errors = _draw_from_threads(tmp_path, n_threads=6, rounds=10)
    assert errors, "six threads drawing ten figures each without the lock collided on every run so far"
