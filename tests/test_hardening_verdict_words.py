"""A challenger evaluated only (`retrain --no-promote`) that passes the gate reads as passed and
waiting in its report, not as refused ("Verdict: not promoted" beside a passed gate)."""
from evaluation.promotion import retrain_and_gate
from evaluation.promotion_report import write_markdown
from tests.test_promotion_gate import MODELS, loop  # noqa: F401 - fixture


def _result(**kw) -> dict:
    base = {"challenger": "tfidf_lr-2", "champion": "tfidf_lr-1", "promoted": False, "forced": False,
            "confidence": 0.95, "warnings": [], "comparisons": {}, "data": {},
            "gate": {"metric": "macro_f1", "min_lower_bound": 0.0, "reason": "r", "passed": True}}
    return {**base, **kw}


def _verdict(tmp_path, result: dict) -> str:
    path = tmp_path / "comparison.md"
    write_markdown(path, result, "comparison.png")
    return next(line for line in path.read_text().splitlines() if line.startswith("**Verdict"))


def test_evaluated_only_and_passed_reads_as_waiting(tmp_path) -> None:
    line = _verdict(tmp_path, _result(evaluate_only=True))
    assert line.startswith("**Verdict: passed the gate, not promoted (evaluated only")
    assert "workbench models promote` tfidf\\_lr-2" in line


def test_refused_and_raced_verdicts_keep_their_words(tmp_path) -> None:
    failed = _result(evaluate_only=True, gate={"metric": "macro_f1", "min_lower_bound": 0.0, "reason": "r",
                                               "passed": False})
    assert _verdict(tmp_path, failed) == "**Verdict: not promoted**"
    assert _verdict(tmp_path, _result()) == "**Verdict: not promoted**"  # a promotion asked for and not made
    raced = _result(promote_refused="the champion changed")
    assert _verdict(tmp_path, raced).startswith("**Verdict: not promoted**: the champion changed")
    assert _verdict(tmp_path, _result(promoted=True)) == "**Verdict: promoted**"


def test_retrain_no_promote_report_says_passed(loop, taxonomy) -> None:  # noqa: F811
    store = loop[0]
    out = retrain_and_gate(store, taxonomy, models_config=MODELS, queue_config=None, actor="eng", promote=False,
                           rescore="none", show_progress=False)
    assert out["gate"]["passed"] and not out["promoted"]
    text = open(out["report"]).read()
    assert "**Verdict: passed the gate, not promoted (evaluated only" in text
