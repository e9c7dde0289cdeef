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
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

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
    from labeling.masking import mask_campaign

    # printed to whoever runs the demo: masked by the rule every campaign view uses
    top = [mask_campaign(app.review(), c) for c in list_campaigns(store, limit=3, taxonomy=app.taxonomy())]
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


def _first_line(exc: BaseException) -> str:
    """A driver's or the OS's own first line of an error (not SQLAlchemy's statement dump)."""
    inner = getattr(exc, "orig", None) or exc
    lines = [ln.strip() for ln in str(inner).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _stopping_errors() -> tuple[type[BaseException], ...]:
    """What stops a step without being a bug: the machine (a full disk, a read-only or vanished
    data dir, a locked database) or a service refusing its input in one line (an embedding model
    that cannot be loaded, too little data)."""
    from sqlalchemy.exc import OperationalError

    from clustering.service import CampaignError
    from labeling.errors import LabelingError
    from models.base import ModelError

    return OSError, OperationalError, ModelError, CampaignError, LabelingError


@contextmanager
def _step(name: str, where: str, echo: Echo) -> Iterator[None]:
    """A step that stops becomes one DemoError line naming it; Ctrl-C says what to do. Each
    service commits its own work, so the steps before stay and a rerun goes on from there."""
    from core.hooks import PermissionDenied

    try:
        yield
    except KeyboardInterrupt:
        echo(f"interrupted in step {name!r}: what it committed is kept; rerun `workbench demo` to go on")
        raise
    except Exception as exc:
        if isinstance(exc, PermissionDenied) or not isinstance(exc, _stopping_errors()):
            raise  # a refusal is the command line's one line already; anything else is a bug to see
        raise DemoError(f"demo step {name!r} stopped: {_first_line(exc)} (data in {where}); the steps before it "
                        "are kept: fix that and rerun `workbench demo`") from None


def _ingest_failure(name: str, summary: Any) -> Optional[str]:
    """Why a dataset's ingest cannot feed the demo (None when it can): the file failed or was cut
    short, a row was lost, or nothing was stored. Rows that were stored stay (a rerun skips them)."""
    if summary.ok:
        return None
    f = summary.files[0]
    why = (f.error.removeprefix(f"{f.path}: ") if f.error else f"{f.lost} rows lost" if f.lost else "no rows"
           if not f.read else f"none of its {f.read} rows could be stored (see {summary.quarantine_path})"
           if not f.stored + f.duplicate else f"read {f.read} rows but their counts do not add up")
    return f"dataset {name!r}: {f.path}: {why}"


def run_demo(app: AppContext, shared_data: Optional[str] = None, limit: Optional[int] = None,
             skip: set[str] | frozenset[str] = frozenset(), echo: Echo = print) -> dict[str, Any]:
    """Ingest, then every demo step; DemoError (one line) when it cannot start or a step stops."""
    from core.ingest import IngestError, ingest_paths
    from core.sources import SHARED_DATASETS, DataNotFound, locate_dataset

    steps = collect_steps()
    known = ["ingest", *(s.name for s in steps)]
    unknown = sorted(set(skip) - set(known))
    if unknown:  # a typo would otherwise run the step it meant to skip
        raise DemoError(f"--skip {unknown[0]}: no such demo step (steps: {', '.join(known)})")
    if limit is not None and limit < 1:
        raise DemoError(f"--limit {limit}: must be at least 1 row per dataset")
    locations = {}
    if "ingest" not in skip:  # every dataset found before anything is written
        for name in SHARED_DATASETS:
            try:
                locations[name] = locate_dataset(name, shared_data)
            except DataNotFound as exc:
                raise DemoError(str(exc)) from None

    store, tax = app.store(), app.taxonomy()
    echo(f"workbench demo: data in {store.display_url}, taxonomy {tax.version}")
    report: dict[str, Any] = {"database": store.display_url, "steps": {}}

    started = time.perf_counter()
    if "ingest" not in skip:
        per_dataset = {}
        with _step("ingest", store.display_url, echo):
            for name, location in locations.items():
                echo(f"[ingest] {name}: {location.description}")
                try:
                    summary = ingest_paths(store, tax, [location.path], preset=name, fmt=location.fmt,
                                           limit=limit, actor="demo")
                except IngestError as exc:
                    raise DemoError(f"dataset {name!r}: {exc}") from None
                echo("  " + summary.describe().replace("\n", "\n  "))
                failure = _ingest_failure(name, summary)
                if failure:  # the rest of the loop on half the data would look like a result
                    fix = ("the store refused rows (disk space?)" if summary.total("lost")
                           else "fix the file (or pass --shared-data FOLDER)")
                    raise DemoError(f"{failure}; {fix} and rerun: rows already stored are kept, not duplicated")
                per_dataset[name] = summary.as_dict()
        report["steps"]["ingest"] = per_dataset
    report["timings"] = {"ingest": round(time.perf_counter() - started, 2)}

    for step in steps:
        if step.name in skip:
            continue
        t0 = time.perf_counter()
        echo(f"[{step.name}]")
        with _step(step.name, store.display_url, echo):
            report["steps"][step.name] = step.run(app, echo)
        report["timings"][step.name] = round(time.perf_counter() - t0, 2)
    echo(f"demo done in {sum(report['timings'].values()):.1f}s")
    return report
