"""The errors of the human side of the loop: each names what the user asked for and why it cannot be done."""
from __future__ import annotations


class LabelingError(ValueError):
    """A labeling operation a user asked for cannot be done; the message says why."""


class QueueError(LabelingError):
    """A queue operation cannot be done (unknown queue or case, the case is not waiting, not the claim holder...)."""


class DecisionError(LabelingError):
    """A decision, correction or appeal is not valid (unknown label, action not allowed, rationale missing...)."""


class AppealPending(DecisionError):
    """The item already has an appeal waiting (`case_id`): a platform's retry of a filing that
    landed, which the HTTP API answers with 409 and that case's id."""

    def __init__(self, item_id: str, case_id: int) -> None:
        super().__init__(f"item {item_id!r} already has an appeal waiting (case {case_id})")
        self.case_id = int(case_id)
