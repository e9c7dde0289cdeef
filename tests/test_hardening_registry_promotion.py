"""Hardening of the registry and the promotion gate: a version that predicts labels the taxonomy no
longer has is never made champion (forced or first), a promotion reason the store or a terminal
cannot keep is refused before any work, and free text in the comparison report stays text."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from core.predictions import champion_version
from core.schema import ModelVersion
from core.taxonomy import Taxonomy
from evaluation.promotion import PromotionError, promote_through_gate, retrain_and_gate
from evaluation.promotion_report import write_markdown
from models.base import ModelError
from models.registry import get_model, train_model
from models.training import TrainingSet
from test_models_fixtures import add_items, toy_corpus
from test_promotion_gate import FAST, MODELS, loop, make_loop  # noqa: F401 (the fixture)


def _wider(taxonomy: Taxonomy) -> Taxonomy:
    """The taxonomy as it was before it lost a policy (`legacy`)."""
    data = taxonomy.model_dump()
    spam = next(name for name, p in taxonomy.policies.items() if p.violating)
    data["policies"]["legacy"] = {**data["policies"][spam]}
    data["version"] = f"{taxonomy.version}-old"
    return Taxonomy.model_validate(data)


def _old_version(store, taxonomy) -> str:
    """A version trained when the taxonomy still had `legacy` (its model predicts it)."""
    texts, ys = toy_corpus(20, seed=9)
    ids = add_items(store, texts, [None] * len(texts), prefix="old")
    data = TrainingSet(ids, texts, ys, ["source"] * len(ids))
    return train_model(store, _wider(taxonomy), config=MODELS, kind="tfidf_lr", params=FAST, data=data,
                       promote_if="never", show_progress=False)["id"]


def test_a_forced_rollback_to_a_version_of_another_taxonomy_is_refused_before_promoting(loop, taxonomy,  # noqa: F811
                                                                                       queue_config):
    store, champ, _ = loop
    old = _old_version(store, taxonomy)
    assert "legacy" in get_model(store, old)["labels"]
    with pytest.raises(ModelError, match=r"legacy") as err:
        promote_through_gate(store, taxonomy, old, models_config=MODELS, queue_config=queue_config, actor="eng",
                             force=True, reason="rollback", show_progress=False)
    assert len(str(err.value).splitlines()) == 1
    with store.read() as conn:
        assert champion_version(conn) == champ  # not a champion that cannot score a single item


def test_a_version_of_another_taxonomy_never_becomes_the_first_champion(sqlite_store, taxonomy):
    old = _old_version(sqlite_store, taxonomy)
    with pytest.raises(ModelError, match=r"legacy"):
        promote_through_gate(sqlite_store, taxonomy, old, models_config=MODELS, queue_config=None, actor="eng",
                             rescore="none", show_progress=False)
    with sqlite_store.read() as conn:
        assert champion_version(conn) is None


@pytest.mark.parametrize("reason", ["rollback\x00", "rollback \x1b[2J\x1b[31mapproved by legal"])
def test_a_promotion_reason_the_store_or_a_terminal_cannot_keep_is_refused_before_training(any_store, taxonomy,
                                                                                          queue_config, reason):
    """A NUL byte or an escape sequence (kept for good in the audit log; `models gates` prints the
    forced reason as it is, so the sequence rewrote the lead's screen) is a one-line refusal first."""
    store, champ, _ = make_loop(any_store, taxonomy, queue_config)
    with store.read() as conn:
        before = conn.execute(select(func.count()).select_from(ModelVersion)).scalar()
    with pytest.raises(PromotionError, match=r"reason holds a (NUL|control character)"):
        retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=queue_config, actor="eng",
                         force=True, reason=reason, rescore="none", show_progress=False)
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(ModelVersion)).scalar() == before
        assert champion_version(conn) == champ


def test_a_forced_reason_in_the_comparison_report_stays_text(tmp_path):
    """The report is shown as Markdown in the Models tab: a reason must not add a heading, a
    verdict line or a link of its own."""
    reason = "queue flooded\n\n# Verdict: not promoted\n[approved](http://evil.example/) <img src=x onerror=alert(1)>"
    result = {"challenger": "tfidf_lr-1", "champion": "tfidf_lr-0", "promoted": True, "forced": True,
              "forced_by": "eng_[lead]", "force_reason": reason, "confidence": 0.95,
              "gate": {"metric": "macro_f1", "min_lower_bound": 0.0, "reason": "too few items", "sets": {}},
              "comparisons": {}, "data": {}}
    md = write_markdown(tmp_path / "comparison.md", result, "comparison.png")
    text = (tmp_path / "comparison.md").read_text()
    assert md.endswith("comparison.md")
    verdict = next(line for line in text.splitlines() if line.startswith("**Verdict"))
    assert "queue flooded" in verdict and "approved" in verdict  # one line, all of it
    assert not any(line.startswith("# Verdict") for line in text.splitlines())
    assert "[approved](" not in text and re.search(r"(?<!\\)<img", text) is None


def test_a_report_never_says_promoted_when_the_champion_changed_meanwhile(loop, taxonomy, tmp_path):  # noqa: F811
    """The gate passed, then the compare-and-swap lost to another promotion: nothing was promoted,
    and the comparison report (written before the swap) said `Verdict: promoted`."""
    from evaluation.promotion import PromotionRefused, compare_and_promote
    from labeling.training_data import learning_data
    from models.registry import promote

    store, champ, ids = loop
    texts, ys = toy_corpus(60, seed=4)
    truth = TrainingSet(ids, texts, ys, ["source"] * len(ids))
    good, other = (train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params={**FAST, "C": c}, data=truth,
                               promote_if="never", show_progress=False)["id"] for c in (1.0, 2.0))
    stale = get_model(store, champ)
    ld = learning_data(store, taxonomy, MODELS.learning, "eng", min_examples_per_label=1)
    promote(store, other, actor="eng", reason="another host")  # lands while the gate compares
    with pytest.raises(PromotionRefused, match="champion is now"):
        compare_and_promote(store, taxonomy, ld, stale, good, kind="tfidf_lr", models_config=MODELS,
                            queue_config=None, actor="eng", promote=True, force=False, reason="", rescore="none",
                            report_dir=str(tmp_path / "r"), show_progress=False, echo=lambda *a, **k: None)
    md = (tmp_path / "r" / "comparison.md").read_text()
    verdict = next(line for line in md.splitlines() if line.startswith("**Verdict"))
    assert "not promoted" in verdict and other in verdict, verdict
    with store.read() as conn:
        assert champion_version(conn) == other


@pytest.mark.parametrize("reason, says", [("x" * 5_001, "has at most"), ("superseded\x1b]52;c;", "control character")])
def test_a_retirement_reason_follows_the_free_text_rule(sqlite_store, taxonomy, reason, says):
    """`models retire --reason` is kept for good in the audit log, as a promotion's reason is:
    the same length and control-character rule, before anything changes."""
    from models.registry import RegistryError, retire

    first = _old_version(sqlite_store, taxonomy)
    with pytest.raises(RegistryError, match=says):
        retire(sqlite_store, first, actor="eng", reason=reason)
    assert get_model(sqlite_store, first)["role"] == "challenger"


def test_a_second_gated_promotion_of_the_same_version_is_no_refusal(loop, taxonomy):  # noqa: F811
    """Two `models promote V` at once (two terminals, a double submit) both compared V with the
    old champion; the first promoted V, and the second said "the champion is now V, not ... run
    the gate again" with exit 1, though V was the champion as asked."""
    from models.registry import promote

    store, champ, ids = loop
    texts, ys = toy_corpus(60, seed=4)
    v = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST,
                    data=TrainingSet(ids, texts, ys, ["source"] * len(ids)), promote_if="never",
                    show_progress=False)["id"]
    assert promote(store, v, actor="eng", expect_champion=champ)["changed"]
    again = promote(store, v, actor="eng", expect_champion=champ)
    assert again == {"champion": v, "previous": None, "changed": False}


def test_a_retired_version_is_never_promoted(loop, taxonomy, queue_config):  # noqa: F811
    """"A retired version scores nothing", yet `models promote` (gated or forced) and the Models
    tab's Promote made one champion again, picked from a listing taken before it was retired."""
    from models.registry import RegistryError, promote, retire

    store, champ, _ = loop
    old = train_model(store, taxonomy, config=MODELS, kind="tfidf_lr", params=FAST, promote_if="never",
                      show_progress=False)["id"]
    retire(store, old, actor="eng", reason="superseded")
    with pytest.raises(PromotionError, match=f"^{old} is retired") as err:
        promote_through_gate(store, taxonomy, old, models_config=MODELS, queue_config=queue_config, actor="eng",
                             force=True, reason="rollback", show_progress=False)
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(RegistryError, match="is retired"):  # the registry's own door, under its row lock
        promote(store, old, actor="eng", reason="rollback")
    assert get_model(store, old)["role"] == "retired"
    with store.read() as conn:
        assert champion_version(conn) == champ


def test_a_version_name_with_a_lone_surrogate_is_refused_in_one_line():
    """It reached the driver: an encoding traceback on both stores."""
    from models.registry import RegistryError, check_version_name

    with pytest.raises(RegistryError, match="not a model version name"):
        check_version_name("v1\ud800")
