"""Learning-loop commands: cold-start seeds, the learning share, likely label errors.

Thin wrappers over `labeling.seeding`, `labeling.learning` and `labeling.label_errors`; top-level
imports stay light (click and the standard library).
"""
from __future__ import annotations

from typing import Any, Optional

import click

from core.hooks import hookimpl

from ..learning import embedder_for, learning_pass
from .common import ID, TEXT
from .common import acting as _acting
from .common import as_option as _as
from .common import emit as _emit
from .common import json_option as _json
from .common import user_errors as _user_errors


def _learning_hint(app: Any, queue: str) -> str:
    """What the learning share will do around the seeds of `queue` (a second line under the seed line)."""
    settings = app.queues().learning
    share = float(settings.queues.get(queue, 0.0))
    if share <= 0:
        return (f"\nqueue {queue} has no learning share (queues.yaml learning.queues): while its model is cold, a "
                "high one teaches it fastest (0.9 in benchmarks/new_surface.py)")
    from labeling.learning import queue_seeds_surface

    surface = queue_seeds_surface(app.store(), app.queues(), queue)
    among = settings.seed_mix(share, new_surface=surface is not None)
    why = (f"learning.among_seeds_new_surface: source {surface} is new to the model" if surface
           else "learning.among_seeds")
    return (f"\nlearning share {share:.0%} of queue {queue}: {among:.0%} of its claims while the seeds wait "
            f"({why}), then after them")


@hookimpl
def register_commands(cli: click.Group) -> None:
    """Add `seed`, `learning` and `label-errors` to the `workbench` group."""

    @cli.command("seed")
    @click.option("--policy", required=True, help="The policy the seeds are for (a taxonomy label).")
    @click.option("--examples", "examples_file", type=click.Path(dir_okay=False),
                  help="File of example texts: one per line, JSONL with a `text` field, or CSV / TSV with a "
                       "`text` column "
                       "(UTF-8; at most 1,000 examples of 10,000 characters, 4 MiB).")
    @click.option("--query", "queries", multiple=True, help="An example text, embedded like the examples (repeatable).")
    @click.option("--keyword", "keywords", multiple=True,
                  help="A word or phrase the seeds hold, matched as whole words, case-insensitive (repeatable).")
    @click.option("--keywords", "keywords_file", type=click.Path(dir_okay=False),
                  help="File of keywords, one per line (the limits of --examples; 200 characters a keyword).")
    @click.option("--from-decisions", "from_decisions", is_flag=True,
                  help="Use the texts of the items already decided as the policy (newest 200) as examples: "
                       "a second round while no promoted model knows the policy.")
    @click.option("--source", type=TEXT, help="Only items of this source (a new source).")
    @click.option("--surface", type=TEXT, help="Only items of this surface (a new surface).")
    @click.option("--neighbours", type=int, default=None, help="How many seed cases (default: seeding.neighbours).")
    @click.option("--uniform-share", type=float, default=None,
                  help="Uniform QA sample, as a share of the seeds (default: seeding.uniform_share).")
    @click.option("--max-similarity", type=float, default=None,
                  help="A neighbour within this cosine of a seed already taken is a near-copy and is passed over "
                       "(default: seeding.max_similarity; 1 keeps near-copies).")
    @_json
    @click.pass_obj
    def seed_cmd(app: Any, policy: str, examples_file: Optional[str], queries: tuple[str, ...],
                 keywords: tuple[str, ...], keywords_file: Optional[str], from_decisions: bool,
                 source: Optional[str], surface: Optional[str], neighbours: Optional[int],
                 uniform_share: Optional[float], max_similarity: Optional[float], as_json: bool) -> None:
        """Cold start: seed the first cases of a policy around a few examples, plus a uniform QA sample.

        \b
        Example:
          workbench seed --policy spam --examples spam_examples.txt --surface sms
          workbench seed --policy scam --query "you have won a prize, call now" --source newapp
          workbench seed --policy spam --from-decisions --surface sms   # round two
          workbench seed --policy scam --keyword "gift card" --keyword zelle --keywords scam_words.txt
        """
        from labeling.seeding import (check_example, check_keyword, decided_examples, read_example_lines, read_examples,
                                      seed_cases)

        with _user_errors():
            # Who and which policy first: a refusal (no `build_cases`, a misspelt policy) came only after
            # every line of the examples file was fixed, or as "no item is decided as P yet".
            app.require("build_cases", f"seed {policy}")
            if policy not in app.taxonomy().policies:
                raise click.UsageError(f"unknown policy {policy!r} (known: {', '.join(app.taxonomy().policies)})")
            examples = (read_examples(examples_file) if examples_file else []) + [
                check_example(q, f"--query {i}") for i, q in enumerate(queries, 1)]
            if from_decisions:
                found = decided_examples(app.store(), app.taxonomy(), policy, source, surface)
                if not found:
                    raise click.UsageError(f"no item is decided as {policy} yet: seed from --examples, --query or "
                                       "--keyword first")
                examples += found
            words = [check_keyword(k, f"--keyword {i}") for i, k in enumerate(keywords, 1)]
            if keywords_file:
                words += [check_keyword(k, f"{keywords_file} line {n}") for n, k in
                          read_example_lines(keywords_file, what="keywords")]
            if not examples and not words:
                raise click.UsageError("give --examples FILE, --query TEXT, --keyword WORD or --from-decisions")
            out = seed_cases(app.store(), app.taxonomy(), app.queues(), _acting(app), policy=policy,
                             examples=examples, keywords=words, embedder=embedder_for(app), source=source,
                             surface=surface,
                             neighbours=neighbours, uniform_share=uniform_share, max_similarity=max_similarity,
                             progress=not as_json)
        _emit(out, as_json, lambda o: click.echo(
            f"{o['seeded']} seed cases and {o['uniform']} uniform QA-sample cases for {o['policy']} at the head of "
            f"queue {o['queue']} ({o['created']} new, {o['moved']} moved)"
            + (f"; {o['passed_over']} claimed or decided meanwhile were passed over" if o["passed_over"] else "")
            + (f"; neighbours within cosine {o['max_similarity']:g} of a seed already taken were passed over as "
               "near-copies" if o.get("max_similarity") is not None else "") + _learning_hint(app, o['queue'])))

    @cli.command("learning")
    @click.option("--queue", help="Only this queue (default: every queue of learning.queues).")
    @_json
    @click.pass_obj
    def learning_cmd(app: Any, queue: Optional[str], as_json: bool) -> None:
        """Re-plan the learning share: pin uncertain, diverse cases among the next claims.

        `cases build` and `cases sweep` run it too; each case it serves is explained as `learning: ...`.

        \b
        Example:
          workbench learning --queue general --json
        """
        with _user_errors():
            out = learning_pass(app, _acting(app), queue)
        _emit(out, as_json, lambda o: click.echo("\n".join(
            f"{q}: {s['learning']} learning cases pinned ({s['share']:.0%} share; {s['uncertain']} uncertain of "
            f"{s['waiting']} waiting"
            + (f"; {s['among_seeds']} between its {s['seeds']} cold-start seeds" if s.get("seeds") else "")
            + (f" of source {s['new_surface']}, new to the model" if s.get("new_surface") else "")
            + f"), {s['unpinned']} back to risk order" for q, s in o.items()) or "no learning queues"))

    @cli.group("label-errors")
    def label_errors() -> None:
        """Likely label errors (confident learning) in a lead's re-review queue.

        \b
        Example:
          workbench label-errors scan && workbench next --queue label-review --as lena
        """

    @label_errors.command("scan")
    @click.option("--max-cases", type=int, default=None, help="At most this many new cases (default: label_errors.max_cases).")
    @_json
    @click.pass_obj
    def label_errors_scan(app: Any, max_cases: Optional[int], as_json: bool) -> None:
        """Rank decided items by how likely their label is wrong; queue the top ones for re-review.

        \b
        Example:
          workbench label-errors scan --json
        """
        from labeling.label_errors import find_label_errors

        with _user_errors():
            out = find_label_errors(app.store(), app.taxonomy(), app.queues(), _acting(app), embedder_for(app),
                                    max_cases=max_cases, progress=not as_json)
        def human(o: dict[str, Any]) -> None:
            click.echo(f"{o['decided']} decided items, {o['flagged']} flagged by confident learning"
                       + (f" ({o['candidates']} likely errors with those under label quality "
                          f"{app.queues().label_errors.min_label_quality:g})" if o.get("candidates") else "")
                       + f"; {o['queued']} queued for re-review"
                       + (f", {o['already_queued']} already there" if o.get("already_queued") else "")
                       + (f", {o['corrected']} left alone as corrected or re-reviewed already" if o.get("corrected")
                          else "")
                       + (f"; {o['closed_superseded']} waiting cases closed as superseded (their decision was "
                          "corrected, undone or reversed since)" if o.get("closed_superseded") else "")
                       + (f" ({o['note']})" if o.get("note") else ""))
            for c in o["cases"][:20]:
                alt = c.get("alternative")  # the model leans to the given label itself: what it weighs next
                click.echo(f"  {c['item_id']}: given {c['given_label']} by {c['reviewer']}, model {c['model_label']} "
                           f"({c['confidence']:.2f})"
                           + (f", next {alt} ({c['alternative_confidence']:.2f})" if alt and alt != c["model_label"]
                              else "") + f", quality {c['quality']:.2f}")
            for who, row in o.get("by_analyst", {}).items():
                click.echo(f"  {who}: {row['flagged']} of {row['decided']} flagged")
        _emit(out, as_json, human)

    @label_errors.command("resolve")
    @click.argument("case_id", type=ID)
    @click.option("--label", required=True, help="The right label (the given one confirms the decision).")
    @click.option("--rationale", required=True, help="Why.")
    @_as
    @_json
    @click.pass_obj
    def label_errors_resolve(app: Any, case_id: int, label: str, rationale: str, analyst: Any, as_json: bool) -> None:
        """A lead's verdict on a re-review case: a new label becomes a correction superseding the decision.

        \b
        Example:
          workbench label-errors resolve 812 --label benign --rationale "a receipt, not spam" --as lena
        """
        from labeling.label_errors import resolve_label_error

        with _user_errors():
            out = resolve_label_error(app.store(), app.taxonomy(), app.queues(), case_id, analyst, label, rationale)
        _emit(out, as_json, lambda o: click.echo(
            f"case {o['case_id']}: {o['outcome']}" + (f" (correction {o['correction_id']} supersedes decision "
                                                      f"{o['decision_id']})" if o["correction_id"] else "")))

    @label_errors.command("counts")
    @_json
    @click.pass_obj
    def label_errors_counts(app: Any, as_json: bool) -> None:
        """Per analyst: decisions queued for re-review, corrected, confirmed, pending.

        \b
        Example:
          workbench label-errors counts --json
        """
        from labeling.label_errors import label_error_counts

        with _user_errors():
            app.require("analyst_quality", "label-error counts per analyst")
            out = label_error_counts(app.store(), app.queues())
        _emit(out, as_json, lambda o: click.echo("\n".join(
            f"{who}: {r['queued']} queued, {r['corrected']} corrected, {r['confirmed']} confirmed, "
            f"{r['superseded']} superseded first, {r['pending']} pending"
            for who, r in o.items()) or "no re-review cases"))

    @cli.command("rereview")
    @click.option("--n", "n", type=int, default=20, show_default=True,
                  help="How many decisions to draw (a campaign decision counts once).")
    @click.option("--analyst", "of_analyst", type=TEXT, default=None, help="Draw only from this analyst's decisions.")
    @click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=None,
                  help="Seed of the uniform draw, to repeat one (default: a fresh one, printed).")
    @_as
    @_json
    @click.pass_obj
    def rereview(app: Any, n: int, of_analyst: Optional[str], seed: Optional[int], analyst: Any,
                 as_json: bool) -> None:
        """Draw decisions uniformly into the lead's queue for a blind QA re-review.

        A campaign decision (every member decided in one action) is one decision, re-reviewed
        through one of its members. The re-reviewer sees a case like any other (no earlier
        decision on it); their answer is a QA-audit decision, and each analyst's QA pass rate in
        `workbench eval report` comes from these.

        \b
        Example:
          workbench rereview --n 25 --analyst ann --as lena
        """
        from labeling.rereview import draw_rereviews

        with _user_errors():
            out = draw_rereviews(app.store(), app.queues(), analyst, n, analyst=of_analyst, seed=seed)

        def human(o: dict[str, Any]) -> None:
            click.echo(f"{o['drawn']} of {o['candidates']} decisions queued for blind re-review in {o['queue']}; "
                       f"work them with `workbench next --queue {o['queue']}` (seed {o['seed']})")
            for c in o.get("campaign_decisions", []):
                click.echo(f"  case {c['case_id']}: one member ({c['item_id']}) of campaign {c['campaign_id']}'s "
                           f"decision of {c['members']} members (case {c['campaign_case_id']})")
        _emit(out, as_json, human)
