"""The review screen's round trip: from a key press to the next case on screen, in Chromium.

A demo-like store is built in a temporary folder from the shared data: a seeded sample of the
SMS Spam Collection and of the Davidson tweets ingested with their presets, one prediction per
item drawn around its source label (no model is trained: the screen's latency does not depend
on which model scored the items), and the cases built from them. Two copies of that store:

- service: the bare service calls one confirm costs, in this process (`decide`, `next_case`,
  `review_packet` for the next case): the baseline.
- browser: the workbench's server on the other copy (Gradio inside this process, as the browser
  tests serve it; `--server process` runs `workbench serve` in its own process instead), Chromium
  at 1366x768 through Playwright, the analyst presses `c`. Two clocks per key:
  - visible (`browser_key_to_next_case_ms`): to the first frame after the next case's header is in
    the page. The screen shows the next case optimistically: the server claimed it ahead and
    rendered it (masked) into a hidden box, and the page swaps it in on the key and sends the
    confirm right after that frame. So this clock measures the swap, not the decision: at that
    moment the decision is not stored yet, and the label, action, lease line and context panel
    still show the last case.
  - ready (`browser_key_to_ready_ms`): to the first frame after the server's answer is applied
    (the header no longer marked `data-optimistic`): the decision stored, the next case claimed
    and its lease renewed, the whole screen the server's. The next key waits for this, so no key
    is dropped, and a refusal (the old case back) would stop the run.

Both run `--decisions` confirms in the same queue. Figures: median and p90 milliseconds of each,
`ratio_median` = visible median / service median (target <= 3) and `ratio_ready` = ready median
/ service median; `optimistic_views` counts the keys whose next case came from the swap, and
`decisions_stored` the decision rows (distinct cases) the confirms left. Then keystrokes per decision
are counted from the keys the benchmark actually sends (confirm; override: a label key, `o`, the
rationale, Ctrl+Enter; escalation: `e`, the reason, Ctrl+Enter), each checked against the stored
rows: targets 1, <= 4 and <= 3 keys besides the typed text. Seeds resample the store; mean and
sd over seeds. Per seed it also reports the median of each fifth of the session (a page that
slows down within a session shows here), where a key's time to ready goes (`browser_split_ms`:
key to the request leaving, the request, the response to the server's header in the DOM, that to
the next frame),
Chrome's page metrics (`Performance.getMetrics`: DOM
nodes, JS event listeners, JS heap) at the start and end, and the 1-minute load average before
and after (the machine is shared). Prints one JSON line.

Usage: nice -n 10 python benchmarks/ui_roundtrip.py [--per-source 700] [--decisions 100] [--seeds 0,1]
       [--server inline|process]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
CHROMIUM = "/usr/bin/chromium"

import numpy as np  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sample_files(folder: Path, per_source: int, seed: int) -> tuple[Path, Path]:
    """Seeded samples of both shared files, in their own formats (so the presets read them)."""
    rng = np.random.default_rng(seed)
    sms_lines = (SHARED / "sms_spam_collection" / "SMSSpamCollection").read_text(encoding="utf-8").splitlines()
    keep = sorted(rng.choice(np.arange(1, len(sms_lines)), size=per_source, replace=False))
    sms = folder / "sms.tsv"
    sms.write_text("\n".join([sms_lines[0]] + [sms_lines[i] for i in keep]) + "\n", encoding="utf-8")
    with open(SHARED / "davidson_hate_offensive" / "labeled_data.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    keep = sorted(rng.choice(np.arange(1, len(rows)), size=per_source, replace=False))
    dav = folder / "davidson.csv"
    with open(dav, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([rows[0]] + [rows[i] for i in keep])
    return sms, dav


def build_store(folder: Path, per_source: int, seed: int):  # type: ignore[no-untyped-def]
    from sqlalchemy import insert, select

    from core.config import config_dir
    from core.ingest import ingest_paths
    from core.schema import Item, Prediction, utcnow
    from core.store import open_store
    from core.taxonomy import load_taxonomy
    from labeling.cases import build_cases
    from labeling.queue_config import load_queue_config

    taxonomy = load_taxonomy()
    qconfig = load_queue_config(config_dir(), taxonomy=taxonomy)
    sms, dav = sample_files(folder, per_source, seed)
    store = open_store(folder / "data")
    ingest_paths(store, taxonomy, [str(sms)], preset="sms_spam", progress=False)
    ingest_paths(store, taxonomy, [str(dav)], preset="davidson", progress=False)
    rng = np.random.default_rng(seed + 1000)
    labels = list(taxonomy.labels)
    with store.begin() as conn:
        items = conn.execute(select(Item.id, Item.policy_label)).all()
        rows = []
        for item_id, policy in items:
            alpha = np.full(len(labels), 0.3)
            alpha[labels.index(policy if policy in labels else taxonomy.benign_label)] = 4.0
            p = rng.dirichlet(alpha)
            scores = {lab: float(round(v, 4)) for lab, v in zip(labels, p)}
            best = max(scores, key=scores.get)
            rows.append(dict(item_id=item_id, model_version="bench-v1", label=best, score=scores[best], scores=scores,
                             uncertainty=float(1 - scores[best]), taxonomy_version=taxonomy.version,
                             created_at=utcnow()))
        conn.execute(insert(Prediction.__table__), rows)
    build_cases(store, taxonomy, qconfig, progress=False)
    store.dispose()
    return taxonomy, qconfig


def pick_queue(store, qconfig, need: int) -> str:  # type: ignore[no-untyped-def]
    """The biggest ordinary queue (a confirm needs no rationale there) with `need` waiting cases."""
    from labeling.cases import queue_status

    status = queue_status(store, qconfig)
    special = {qconfig.escalation_queue, qconfig.appeals_queue, qconfig.calibration_queue, "campaigns"}
    ok = {q: s["waiting"] for q, s in status.items() if q not in special}
    queue = max(ok, key=ok.get)
    if ok[queue] < need:
        raise SystemExit(f"the biggest queue {queue} has {ok[queue]} cases, {need} needed: raise --per-source")
    return queue


def service_run(data: Path, taxonomy, qconfig, queue: str, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    from clustering.config import load_campaign_settings
    from core.config import config_dir
    from core.store import open_store
    from labeling.claims import next_case
    from labeling.decisions import decide
    from labeling.packets import review_packet
    from labeling.review_config import load_review_settings

    store = open_store(data)
    settings, camp = load_review_settings(config_dir(), taxonomy), load_campaign_settings(config_dir())
    case = next_case(store, "alice", queue, qconfig, detail=False)
    packet = review_packet(store, taxonomy, case["id"], settings, camp, viewer="alice")
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        label = packet["suggested_label"]
        decide(store, taxonomy, packet["case"]["id"], "alice", label,
               action=packet["choices"][label]["default_action"], config=qconfig)
        case = next_case(store, "alice", queue, qconfig, detail=False)
        packet = review_packet(store, taxonomy, case["id"], settings, camp, viewer="alice")
        out.append((time.perf_counter() - t0) * 1000)
    store.dispose()
    return out


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_of(shown: list[list[float]], requests: list[list[float]]) -> dict[str, float]:
    """Median milliseconds of each part of a key's round trip, from the page's clock: key to the
    request leaving, the request (server and transport), the response to the header's change in
    the DOM (Gradio applying the outputs), and that change to the next frame."""
    parts = []
    for key, mutated, frame in shown:
        sent = [r for r in requests if key <= r[0] <= mutated]
        if sent:
            start, end = sent[0]
            parts.append((start - key, end - start, mutated - end, frame - mutated))
    if not parts:
        return {}
    med = np.median(np.array(parts), axis=0)
    return {name: round(float(v), 1) for name, v in zip(("key_to_request", "request", "response_to_header",
                                                          "header_to_frame"), med)}


class Server:
    """The server the browser talks to: with `inline` Gradio in this process
    (`workbench.ui.serve(block=False)`, as the browser tests run it), else `workbench serve` in
    its own process (as deployed: the Playwright client does not share the server's interpreter,
    and the sweeper and webhook worker run beside it)."""

    def __init__(self, data: Path, queue: str, port: int, inline: bool) -> None:
        self.app = self.proc = None
        if inline:
            from core.store import open_store
            from workbench.context import AppContext
            from workbench.ui import serve

            self.store = open_store(data)
            self.app = serve(AppContext(store=self.store), port=port, analyst="alice", queue=queue, block=False)
            return
        self.log = open(data.parent / f"serve-{port}.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "--data-dir", str(data), "serve",
                                      "--port", str(port), "--as", "alice", "--queue", queue], cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.close()
                    raise SystemExit(f"`workbench serve` did not start: see {self.log.name}") from None
                time.sleep(0.5)

    def close(self) -> None:
        if self.app is not None:
            self.app.close()
            self.store.dispose()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.log.close()


def browser_run(data: Path, queue: str, n: int, inline: bool = False) -> tuple[list[float], dict[str, int]]:
    from playwright import sync_api
    from sqlalchemy import func, select

    from core.schema import Case, Decision
    from core.store import open_store

    port = _port()
    server = Server(data, queue, port, inline)
    store = open_store(data)
    head = "#wb-header .wb-head"
    times: list[float] = []
    keys: dict[str, int] = {}
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("#wb-next")
            page.wait_for_function("() => (document.querySelector('#wb-queue input') || {}).value?.includes('left')",
                                   timeout=30000)

            def case_id() -> str:
                return page.get_attribute(head, "data-case") or ""

            def next_on_screen(before: str, timeout: int = 30000) -> str:
                try:
                    wait_next(before, timeout)
                except sync_api.Error:
                    errs = " / ".join(page.inner_text(f"#{e}") for e in ("wb-label-err", "wb-rationale-err",
                                                                          "wb-buttons-err", "wb-header"))
                    raise SystemExit(f"no next case after case {before}: {errs}") from None
                return case_id()

            def wait_next(before: str, timeout: int) -> None:
                """The server's next case on screen (not an optimistic view of it)."""
                page.wait_for_function(f"() => {{ const h = document.querySelector('{head}'); "
                                       f"return h && !h.hasAttribute('data-optimistic') && h.getAttribute('data-case') "
                                       f"&& h.getAttribute('data-case') !== '{before}'; }}",
                                       timeout=timeout, polling="raf")

            # The clocks run in the page, from the key's keydown (Playwright's own round trips are not
            # counted): visible, to the first frame after another case's header is in the page (the
            # optimistic swap, or the server's answer where there was none); ready, to the first frame
            # after the server's answer is (a header without data-optimistic).
            page.evaluate("""() => {
              const b = window.wbBench = {key: 0, from: null, seen: false, optimistic: 0, shown: [], ready: [],
                                          split: [], requests: []};
              // where the time goes: each key's Gradio request (Resource Timing) and the header's mutation
              new PerformanceObserver((list) => list.getEntries().forEach((e) => {
                if (e.name.includes('/run/predict')) b.requests.push([e.startTime, e.responseEnd]);
              })).observe({type: 'resource'});
              // on window, capturing: it runs before the page's own key handler (on document) swaps the
              // view and sends the click
              window.addEventListener('keydown', (e) => {
                if (e.key !== 'c') return;
                const h = document.querySelector('#wb-header .wb-head');
                b.key = performance.now(); b.from = h && h.getAttribute('data-case'); b.seen = false;
              }, true);
              new MutationObserver(() => {
                if (!b.key) return;
                const h = document.querySelector('#wb-header .wb-head');
                const id = h && h.getAttribute('data-case');
                if (!id || id === b.from) return;
                const key = b.key, opt = h.hasAttribute('data-optimistic'), mutated = performance.now();
                if (!b.seen) {
                  b.seen = true;
                  if (opt) b.optimistic += 1;
                  requestAnimationFrame(() => b.shown.push(performance.now() - key));
                }
                if (!opt) {
                  b.key = 0;
                  requestAnimationFrame(() => {
                    const now = performance.now();
                    b.ready.push(now - key);
                    b.split.push([key, mutated, now]);
                  });
                }
              }).observe(document.body, {childList: true, subtree: true, attributes: true});
            }""")
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")

            def metrics() -> dict[str, int]:
                """Chrome's page metrics: a page that slows down over a session shows it here first."""
                cdp.send("HeapProfiler.collectGarbage")  # live nodes and heap, not garbage waiting for a GC
                m = {x["name"]: x["value"] for x in cdp.send("Performance.getMetrics")["metrics"]}
                return {k: int(m[k]) for k in ("Nodes", "JSEventListeners", "JSHeapUsedSize") if k in m}

            page.keyboard.press("n")
            current = next_on_screen("")
            keys["metrics_start"] = metrics()  # type: ignore[assignment]
            dropped = 0
            for _ in range(n):
                # an analyst reads first (a second key within 400 ms of a case change is ignored);
                page.wait_for_timeout(450)  # the next key only once the server's
                page.keyboard.press("c")    # answer is applied (one in flight is ignored: trigger_mode "once")
                try:
                    wait_next(current, 10000)
                except sync_api.Error:
                    dropped += 1
                    page.keyboard.press("c")
                current = next_on_screen(current)
            keys["dropped_keys"] = dropped
            with store.read() as conn:  # every confirm stored, each on its own case
                rows, cases = conn.execute(select(func.count(Decision.id), func.count(func.distinct(Decision.case_id)))
                                           .where(Decision.reviewer == "alice")).one()
            if rows != n or cases != n:
                raise SystemExit(f"{rows} decisions on {cases} cases stored after {n} confirms")
            keys["decisions_stored"] = rows
            page.wait_for_timeout(200)
            keys["metrics_end"] = metrics()  # type: ignore[assignment]
            times, ready, keys["optimistic_views"] = page.evaluate(  # type: ignore[assignment]
                "[window.wbBench.shown, window.wbBench.ready, window.wbBench.optimistic]")
            keys["ready"] = ready  # type: ignore[assignment]
            keys["split"] = split_of(*page.evaluate("[window.wbBench.split, window.wbBench.requests]"))  # type: ignore[assignment]
            if len(times) != n or len(ready) != n:
                raise SystemExit(f"{len(times)} visible and {len(ready)} ready case changes timed, {n} expected")

            def sent(seq: list[str]) -> int:
                """Send the keys (a str longer than one key is typed text, not counted); count the keys."""
                count = 0
                for k in seq:
                    if len(k) > 1 and k not in ("Control+Enter",):
                        page.keyboard.type(k)
                    else:
                        page.keyboard.press(k)
                        count += 1
                return count

            # override: a label key other than the model's, o, the rationale, Ctrl+Enter
            model = page.inner_text("#wb-model b")
            labels = page.eval_on_selector_all("#wb-label input[type=radio]", "els => els.map(e => e.value)")
            other = next(i for i, lab in enumerate(labels) if lab != model)
            case_before = int(current)
            keys["override"] = sent([str(other + 1), "o", "not what the model says, checked by hand", "Control+Enter"])
            current = next_on_screen(current)
            page.wait_for_timeout(300)
            escalated = int(current)
            keys["escalation"] = sent(["e", "needs a specialist look", "Control+Enter"])
            current = next_on_screen(current)
            keys["confirm"] = 1
            browser.close()
        with store.read() as conn:
            over = conn.execute(select(Decision.is_override, Decision.rationale, Decision.label)
                                .where(Decision.case_id == case_before)).one()
            esc = conn.execute(select(Case.queue).where(Case.id == escalated)).scalar()
            made = conn.execute(select(Decision.id).where(Decision.reviewer == "alice")).all()
        if not (over.is_override and over.label == labels[other] and over.rationale.startswith("not what")):
            raise SystemExit(f"the keyboard override was not stored as one: {tuple(over)}")
        if esc != "escalation":
            raise SystemExit(f"the keyboard escalation did not reach the escalation queue (case {escalated}: {esc})")
        if len(made) != n + 1:
            raise SystemExit(f"{len(made)} decisions stored, {n + 1} expected")
    finally:
        server.close()
        store.dispose()
    return times, keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-source", type=int, default=700)
    ap.add_argument("--decisions", type=int, default=100)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--server", choices=("inline", "process"), default="inline",
                    help="Gradio inside this process (default), or `workbench serve` in its own process")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}")
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        tmp = Path(tempfile.mkdtemp(prefix="ui_roundtrip_"))
        try:
            log(f"seed {seed}: building a store of {2 * args.per_source} items")
            taxonomy, qconfig = build_store(tmp, args.per_source, seed)
            shutil.copytree(tmp / "data", tmp / "data-browser")
            from core.store import open_store

            store = open_store(tmp / "data")
            queue = pick_queue(store, qconfig, args.decisions + 5)
            store.dispose()
            log(f"seed {seed}: {args.decisions} confirms in {queue}: service")
            service = service_run(tmp / "data", taxonomy, qconfig, queue, args.decisions)
            log(f"seed {seed}: browser")
            load_before = os.getloadavg()[0]
            browser, keys = browser_run(tmp / "data-browser", queue, args.decisions, inline=args.server == "inline")
            chunk = max(1, args.decisions // 5)
            ready = keys.pop("ready")
            runs.append({"load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                         "browser_ready_median_ms": float(np.median(ready)),
                         "browser_ready_p90_ms": float(np.percentile(ready, 90)),
                         "decisions_stored": keys.pop("decisions_stored"), "optimistic_views": keys.pop("optimistic_views"),
                         "browser_chunk_medians_ms": [round(float(np.median(browser[i:i + chunk])), 1)
                                                      for i in range(0, len(browser), chunk)],
                         "page_metrics": {"start": keys.pop("metrics_start"), "end": keys.pop("metrics_end")},
                         "browser_split_ms": keys.pop("split"), "seed": seed, "queue": queue,
                         "browser_median_ms": float(np.median(browser)), "browser_p90_ms": float(np.percentile(browser, 90)),
                         "service_median_ms": float(np.median(service)), "service_p90_ms": float(np.percentile(service, 90)),
                         "keys": keys})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def stat(key: str) -> dict[str, float]:
        v = np.array([r[key] for r in runs])
        return {"mean": round(float(v.mean()), 1), "sd": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 1)}

    ratios = np.array([r["browser_median_ms"] / r["service_median_ms"] for r in runs])
    ready = np.array([r["browser_ready_median_ms"] / r["service_median_ms"] for r in runs])
    keys = runs[-1]["keys"]
    met_speed = bool(ratios.mean() <= 3.0)
    met_keys = keys["confirm"] <= 1 and keys["override"] <= 4 and keys["escalation"] <= 3
    print(json.dumps({
        "benchmark": "ui_roundtrip", "server": args.server, "decisions": args.decisions, "items": 2 * args.per_source,
        "seeds": [r["seed"] for r in runs], "queues": [r["queue"] for r in runs],
        "browser_key_to_next_case_ms": {"median": stat("browser_median_ms"), "p90": stat("browser_p90_ms")},
        "browser_key_to_ready_ms": {"median": stat("browser_ready_median_ms"), "p90": stat("browser_ready_p90_ms")},
        "service_call_ms": {"median": stat("service_median_ms"), "p90": stat("service_p90_ms")},
        "ratio_median": {"mean": round(float(ratios.mean()), 2),
                         "sd": round(float(ratios.std(ddof=1)) if len(ratios) > 1 else 0.0, 2)},
        "ratio_ready": {"mean": round(float(ready.mean()), 2),
                        "sd": round(float(ready.std(ddof=1)) if len(ready) > 1 else 0.0, 2)},
        "decisions_stored": [r["decisions_stored"] for r in runs],
        "optimistic_views": [r["optimistic_views"] for r in runs],
        "target_ratio": 3.0,
        "keystrokes": {"confirm": keys["confirm"], "override_plus_text": keys["override"],
                       "escalation_plus_text": keys["escalation"], "targets": {"confirm": 1, "override": 4,
                                                                                "escalation": 3}},
        "dropped_keys": sum(r["keys"].get("dropped_keys", 0) for r in runs),
        "per_seed": [{k: r[k] for k in ("seed", "browser_median_ms", "browser_ready_median_ms", "service_median_ms",
                                        "browser_split_ms",
                                        "browser_chunk_medians_ms", "page_metrics", "load_avg_1min")} for r in runs],
        "cpu_cores": os.cpu_count(),
        "met": met_speed and met_keys, "met_speed": met_speed, "met_speed_ready": bool(ready.mean() <= 3.0),
        "met_keys": met_keys,
    }))


if __name__ == "__main__":
    main()
