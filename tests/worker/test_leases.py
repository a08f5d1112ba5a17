"""The lease ledger's two checks against a heartbeat's `held`, with hand-moved time."""

from __future__ import annotations

from unified_swarm.client.types import Lease
from unified_swarm.worker.leases import LeaseBook


def lease(task_id: str, token: int = 1) -> Lease:
    return {"task_id": task_id, "session_id": "s", "fencing_token": token,
            "expires_at": None}


def test_a_lease_nobody_claimed_here_is_a_stray() -> None:
    book = LeaseBook()
    review = book.review([lease("a")], sent_at=10.0, now=10.1)
    assert [s["task_id"] for s in review.strays] == ["a"] and review.lost == []


def test_known_leases_are_neither_stray_nor_lost() -> None:
    book = LeaseBook()
    call = book.call_started(1.0)
    book.call_ended(call, ("a", 1), 1.1)
    review = book.review([lease("a")], sent_at=2.0, now=2.1)
    assert review.strays == [] and review.lost == []


def test_no_stray_while_a_claim_that_may_have_made_it_is_in_flight() -> None:
    book = LeaseBook()
    call = book.call_started(1.0)  # its answer is on the way
    assert book.review([lease("a")], sent_at=2.0, now=2.1).strays == []
    late = book.call_started(3.0)  # started after the lease was first listed: not its claim
    assert book.review([lease("a")], sent_at=4.0, now=4.1).strays == []  # `call` still open
    book.call_ended(call, None, 4.5)  # its answer was lost
    assert [s["task_id"] for s in book.review([lease("a")], 5.0, 5.1).strays] == ["a"]
    book.call_ended(late, None, 5.2)


def test_a_claim_whose_answer_arrives_clears_the_suspicion() -> None:
    book = LeaseBook()
    call = book.call_started(1.0)
    book.review([lease("a")], sent_at=2.0, now=2.1)
    book.call_ended(call, ("a", 1), 2.2)
    assert book.review([lease("a")], sent_at=3.0, now=3.1).strays == []


def test_an_outcome_recorded_after_the_beat_was_sent_is_not_a_stray() -> None:
    book = LeaseBook()
    call = book.call_started(1.0)
    book.call_ended(call, ("a", 1), 1.1)
    book.concluded(("a", 1), 2.5)  # completed while the heartbeat (sent at 2.0) was out
    assert book.review([lease("a")], sent_at=2.0, now=2.6).strays == []
    # but still listed by a heartbeat sent later: our outcome never landed, give it back
    assert [s["task_id"] for s in book.review([lease("a")], 3.0, 3.1).strays] == ["a"]


def test_a_running_attempt_missing_from_held_is_lost_once() -> None:
    book = LeaseBook()
    call = book.call_started(1.0)
    book.call_ended(call, ("a", 1), 1.1)
    assert book.review([], sent_at=1.05, now=1.2).lost == []  # learned after the beat left
    assert book.review([], sent_at=2.0, now=2.1).lost == [("a", 1)]
    assert book.review([], sent_at=3.0, now=3.1).lost == []  # reported once
    assert book.running() == [("a", 1)]


def test_a_released_stray_is_not_released_twice() -> None:
    book = LeaseBook()
    (stray,) = book.review([lease("a", 4)], sent_at=1.0, now=1.1).strays
    book.released(stray, 1.2)
    assert book.review([lease("a", 4)], sent_at=1.1, now=1.3).strays == []
    assert book.review([lease("a", 5)], sent_at=2.0, now=2.1).strays != []  # a new attempt


def test_an_unsettled_outcome_is_sent_again_never_released() -> None:
    """The worker finished the attempt and sent its outcome without an answer: while the
    server lists the lease it is to be sent again, never released as a stray."""
    book = LeaseBook(ttl=3.0)
    book.call_ended(book.call_started(1.0), ("a", 1), 1.1)
    assert book.lease_end(("a", 1)) == 4.1
    book.concluded(("a", 1), 2.0, settled=False)
    review = book.review([lease("a")], sent_at=2.5, now=2.6)
    assert review.strays == [] and review.unsettled == [("a", 1)]
    assert book.lease_end(("a", 1)) == 5.5  # renewed by that beat
    review = book.review([lease("a")], sent_at=3.5, now=3.6)
    assert review.strays == [] and review.unsettled == [("a", 1)]


def test_an_unsettled_outcome_whose_lease_is_no_longer_listed_is_gone() -> None:
    book = LeaseBook(ttl=3.0)
    book.call_ended(book.call_started(1.0), ("a", 1), 1.1)
    book.concluded(("a", 1), 2.0, settled=False)
    assert book.review([], sent_at=1.9, now=2.1).gone == []  # sent before: proves nothing
    assert book.review([], sent_at=2.5, now=2.6).gone == [("a", 1)]
    assert book.review([], sent_at=3.5, now=3.6).gone == []  # said once
    assert book.lease_end(("a", 1)) == float("-inf")


def test_a_settled_resend_stops_the_resending() -> None:
    book = LeaseBook(ttl=3.0)
    book.call_ended(book.call_started(1.0), ("a", 1), 1.1)
    book.concluded(("a", 1), 2.0, settled=False)
    book.concluded(("a", 1), 2.2)  # sent again, recorded
    review = book.review([], sent_at=2.5, now=2.6)
    assert review.gone == [] and review.unsettled == []


def test_an_abandoned_outcome_is_given_back_once() -> None:
    book = LeaseBook(ttl=3.0)
    book.call_ended(book.call_started(1.0), ("a", 1), 1.1)
    book.concluded(("a", 1), 2.0, settled=False)
    book.abandon(("a", 1))
    review = book.review([lease("a")], sent_at=2.5, now=2.6)
    assert [g["task_id"] for g in review.give_back] == ["a"] and review.strays == []
    book.released(review.give_back[0], 2.7)
    assert book.review([lease("a")], sent_at=2.8, now=2.9).give_back == []
