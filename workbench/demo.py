"""`workbench demo`: the whole loop on the shared datasets.

Ingest runs first and finds the data (shared folder, else the Hub); every later step is a
`demo_steps` hook implementation (`core.hooks.DemoStep`), run in ascending order, so a plugin
adds a step without touching this file. The built-in steps below are thin: each calls its
area's service functions with the configs of the application context. The learning loop
after the cases (simulated decisions, retrain behind the gate, label errors, the evaluation
report, drift, search) is in `demo_loop`.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

from core.hooks import DemoStep, hookimpl, pm

from .context import AppContext

Echo = Callable[..., None]


class DemoError(RuntimeError):
    """The demo cannot run (no data found); the message says what to do."""


def models_step(app: AppContext, echo: Echo) -> dict[str, Any]:
    """Train (or reuse) the default model on the grouped train side; the first becomes champion, a
    later one only through the gate (a re-run never replaces a champion unchecked); score every item."""
    from evaluation.promotion import promote_through_gate
    from labeling.training_data import learning_data
    from models.demo import models_demo

    cfg = app.models()
    ld = learning_data(app.store(), app.taxonomy(), cfg.learning, "demo",
                       min_examples_per_label=cfg.training.min_examples_per_label)

    def gate(version: str) -> dict[str, Any]:
        return promote_through_gate(app.store(), app.taxonomy(), version, models_config=cfg, queue_config=None,
                                    actor="demo", rescore="none", show_progress=False)

    return models_demo(app.store(), app.taxonomy(), cfg, echo, *ld.fit_sets(cfg.training.seed), gate=gate,
                       decisions_through=ld.stats["decisions_through"])


def campaigns_step(app: AppContext, echo: Echo) -> dict[str, Any]:
    """Build the index and the campaigns, then show the biggest ones."""
    from clustering.explore import list_campaigns
    from clustering.service import cluster

    store = app.store()
    summary = cluster(store, app.campaigns(), actor="demo", show_progress=False)
    echo(f"  {summary['mode']} clustering of {summary['items_clustered']} items: "
         f"{summary['campaigns_active']} campaigns, index {summary['index']['kind']} "
         f"({summary['index']['size']} distinct texts) in {summary['seconds']['total']:.1f}s")
    top = list_campaigns(store, limit=3, taxonomy=app.taxonomy())
    for c in top:
        terms = ", ".join(t for t, _ in c["top_terms"][:5])
        echo(f"  campaign {c['id']}: {c['size']} items [{terms}] e.g. {str(c['exemplar_text'])[:70]!r}")
    return {**summary, "top_campaigns": [{"id": c["id"], "size": c["size"]} for c in top]}


def cases_step(app: AppContext, echo: Echo) -> dict[str, Any]:
    """Build cases from the scored items and campaigns, then show the queue KPIs."""
    from evaluation.ops import ops_kpis
    from labeling.cases import build_cases, list_cases

    store, config = app.store(), app.queues()
    summary = build_cases(store, app.taxonomy(), config, actor="demo")
    echo(f"  {summary['cases']} new cases: " + ", ".join(f"{q}={n}" for q, n in sorted(summary["by_queue"].items()))
         + f"; {summary['audit']} QA audit, {summary['escalated']} escalated")
    for row in list_cases(store, limit=3):
        echo(f"  next up: case {row['id']} [{row['queue']}] {row['priority_reason']}")
    kpis = ops_kpis(store, config=config)
    echo(f"  backlog {kpis['backlog']} cases in {len(kpis['queues'])} queues")
    return {"build": summary, "backlog": kpis["backlog"], "queues": kpis["queues"]}


@hookimpl
def demo_steps() -> list[DemoStep]:
    # Campaigns before the first model: its training stores each item's train/test side, grouped
    # by campaign only where campaigns exist (`labeling.training_data.unclustered_warning`).
    return [DemoStep("campaigns", 100, campaigns_step), DemoStep("models", 200, models_step),
            DemoStep("cases", 300, cases_step)]


def collect_steps() -> list[DemoStep]:
    """Every plugin's demo steps (the built-in ones registered once), in run order."""
    import sys

    from . import demo_loop

    for name, module in (("workbench.demo", sys.modules[__name__]), ("workbench.demo_loop", demo_loop)):
        if not pm.is_registered(module):
            pm.register(module, name=name)
    steps = [s for batch in pm.hook.demo_steps() for s in batch]
    return sorted(steps, key=lambda s: (s.order, s.name))


def run_demo(app: AppContext, shared_data: Optional[str] = None, limit: Optional[int] = None,
             skip: set[str] | frozenset[str] = frozenset(), echo: Echo = print) -> dict[str, Any]:
    from core.ingest import ingest_paths
    from core.sources import SHARED_DATASETS, DataNotFound, locate_dataset

    store, tax = app.store(), app.taxonomy()
    echo(f"workbench demo: data in {store.display_url}, taxonomy {tax.version}")
    report: dict[str, Any] = {"database": store.display_url, "steps": {}}

    started = time.perf_counter()
    if "ingest" not in skip:
        per_dataset = {}
        for name in SHARED_DATASETS:
            try:
                location = locate_dataset(name, shared_data)
            except DataNotFound as exc:
                raise DemoError(str(exc)) from None
            echo(f"[ingest] {name}: {location.description}")
            summary = ingest_paths(store, tax, [location.path], preset=name, fmt=location.fmt,
                                   limit=limit, actor="demo")
            echo("  " + summary.describe().replace("\n", "\n  "))
            per_dataset[name] = summary.as_dict()
        report["steps"]["ingest"] = per_dataset
    report["timings"] = {"ingest": round(time.perf_counter() - started, 2)}

    for step in collect_steps():
        if step.name in skip:
            continue
        t0 = time.perf_counter()
        echo(f"[{step.name}]")
        report["steps"][step.name] = step.run(app, echo)
        report["timings"][step.name] = round(time.perf_counter() - t0, 2)
    echo(f"demo done in {sum(report['timings'].values()):.1f}s")
    return report
