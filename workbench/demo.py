"""`workbench demo`: the whole loop on the shared datasets, one step per area.

Each step is a function `(store, taxonomy, echo) -> dict` living in its own area's module; this
file only orders them. The ingest step runs first and finds the data (shared folder, else Hub).
"""
from __future__ import annotations

import importlib
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from .cli import AppContext

Echo = Callable[..., None]

# Later steps, as "module:function"; each takes (store, taxonomy, echo) and returns a summary dict.
STEPS: list[str] = ["models.demo:models_demo", "clustering.service:campaigns_demo", "workbench.queue_cli:demo_step"]


class DemoError(RuntimeError):
    """The demo cannot run (no data found); the message says what to do."""


def run_demo(app: "AppContext", shared_data: Optional[str] = None, limit: Optional[int] = None,
             skip: set[str] | frozenset[str] = frozenset(), echo: Echo = print) -> dict[str, Any]:
    from .ingest import ingest_paths
    from .sources import DataNotFound, SHARED_DATASETS, locate_dataset

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

    for spec in STEPS:
        module_name, func_name = spec.split(":")
        name = module_name.rsplit(".", 1)[-1] + "." + func_name
        if func_name in skip or name in skip or module_name.rsplit(".", 1)[-1] in skip:
            continue
        t0 = time.perf_counter()
        step = getattr(importlib.import_module(module_name), func_name)
        echo(f"[{func_name}]")
        report["steps"][func_name] = step(store, tax, echo)
        report["timings"][func_name] = round(time.perf_counter() - t0, 2)
    echo(f"demo done in {sum(report['timings'].values()):.1f}s")
    return report
