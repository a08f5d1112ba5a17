"""The learned choice on crafted cases: critical path first, the fast session preferred, a
hold never longer than its expected gain, several waiters matched in one solve, breakers."""

from __future__ import annotations

import itertools

import pytest

from unified_swarm import stats
from unified_swarm.core.brain import Brain, BrainParams
from unified_swarm.core.choice import ChoiceParams
from unified_swarm.models import Event, Quarantine, Session, SessionStatus
from unified_swarm.stats import ON_SUCCESS, PairStats

SEQ = itertools.count(1)


def ev(type_: str, at: float = 0.0, **data: object) -> Event:
    return Event(next(SEQ), type_, at, dict(data))


def session(sid: str, caps: list[str] | None = None, slots: int = 1) -> Session:
    return Session(sid, sid, caps or [], SessionStatus.IDLE, slots, 10.0, 0.0, 0.0)


def trained(durations: dict[tuple[str, str], float], n: int = 30) -> list[
        tuple[str, str, PairStats]]:
    out = []
    for (sid, cap), d in durations.items():
        st = PairStats()
        for _ in range(n):
            st = stats.apply(st, ON_SUCCESS, d)
        out.append((sid, cap, st))
    return out


def brain(explore: bool = False, **choice: object) -> Brain:
    return Brain(BrainParams(choice=ChoiceParams(explore=explore, **choice), seed=7))  # type: ignore[arg-type]


def add(b: Brain, tid: str, cap: str = "x", deps: list[str] | None = None,
        priority: int = 6) -> None:
    status = "pending" if deps else "ready"
    b.apply([ev("task.added", task_id=tid, status=status, required_capability=cap,
                priority=priority, dependencies=deps or [])])


def join(b: Brain, sid: str, caps: list[str] | None = None) -> None:
    b.apply([ev("session.joined", session_id=sid, capabilities=caps or [],
                max_concurrent_tasks=1)])


def claim(b: Brain, tid: str, sid: str, at: float) -> None:
    b.apply([ev("task.claimed", at, task_id=tid, session_id=sid, required_capability="x")])


def test_the_remaining_critical_path_starts_first() -> None:
    b = brain()
    add(b, "lone")
    add(b, "head")
    add(b, "mid", deps=["head"])
    add(b, "tail", deps=["mid"])
    join(b, "s")
    assert b.decide(session("s"), 0.0).task_id == "head"


def test_priority_class_comes_before_the_critical_path() -> None:
    b = brain()
    add(b, "head")
    add(b, "tail", deps=["head"])
    add(b, "urgent", priority=9)
    assert b.decide(session("s"), 0.0).task_id == "urgent"


def test_a_task_is_held_for_a_much_faster_waiting_session() -> None:
    b = brain()
    b.load([], [session("fast"), session("slow")],
           trained({("fast", "x"): 10.0, ("slow", "x"): 40.0}))
    b.waiting.add("fast")
    add(b, "t")
    d = b.decide(session("slow"), 100.0)
    assert d.task_id is None and d.retry_at is not None
    (hold,) = d.holds
    assert hold.session_id == "fast"
    assert b.decide(session("fast"), 100.5).task_id == "t"


def test_a_hold_is_never_longer_than_its_expected_gain() -> None:
    b = brain(max_hold=1000.0)
    b.load([], [session("fast"), session("slow")],
           trained({("fast", "x"): 10.0, ("slow", "x"): 40.0}))
    add(b, "other")
    claim(b, "other", "fast", at=95.0)  # fast is busy, expected free at ~105
    add(b, "t")
    mine = b._finish("slow", "t", 100.0, False)[0]
    theirs = b._alternative("t", frozenset({"slow"}), 100.0)
    assert theirs is not None and theirs.session_id == "fast"
    d = b.decide(session("slow"), 100.0)
    assert d.task_id is None
    (hold,) = d.holds
    assert 0 < hold.until - 100.0 <= mine - theirs.finish + 1e-9
    # once the hold runs out, the slow session takes the task
    assert b.decide(session("slow"), hold.until + 0.001).task_id == "t"


def test_max_hold_caps_the_hold() -> None:
    b = brain(max_hold=3.0)
    b.load([], [session("fast"), session("slow")],
           trained({("fast", "x"): 10.0, ("slow", "x"): 40.0}))
    b.waiting.add("fast")
    add(b, "t")
    (hold,) = b.decide(session("slow"), 0.0).holds
    assert hold.until == pytest.approx(3.0)


def test_no_hold_when_the_faster_session_is_busy_for_long() -> None:
    b = brain()
    b.load([], [session("fast"), session("slow")],
           trained({("fast", "x"): 10.0, ("slow", "x"): 12.0}))
    add(b, "other")
    claim(b, "other", "fast", at=100.0)
    add(b, "t")
    assert b.decide(session("slow"), 100.0).task_id == "t"


def test_no_hold_for_a_session_that_is_neither_waiting_nor_busy() -> None:
    b = brain()
    b.load([], [session("fast"), session("slow")],
           trained({("fast", "x"): 10.0, ("slow", "x"): 40.0}))
    add(b, "t")
    assert b.decide(session("slow"), 0.0).task_id == "t"


def test_cold_start_holds_nothing() -> None:
    b = brain()
    for s in ("a", "b", "c"):
        join(b, s)
    b.waiting |= {"b", "c"}
    add(b, "t")
    assert b.decide(session("a"), 0.0).task_id == "t"


def test_a_slow_session_still_works_when_the_fast_ones_are_spoken_for() -> None:
    b = brain()
    b.load([], [session("fast"), session("slow")],
           trained({("fast", "x"): 10.0, ("slow", "x"): 40.0}))
    b.waiting.add("fast")
    add(b, "t1")
    add(b, "t2")
    d = b.decide(session("slow"), 0.0)
    assert d.task_id == "t2" and [h.task_id for h in d.holds] == ["t1"]


def test_several_waiters_are_matched_in_one_solve() -> None:
    """Greedy in rank order would give the x-expert the y task it ranks first; the solve
    gives each session what it is fast at."""
    b = brain()
    b.load([], [session("xs"), session("ys")],
           trained({("xs", "x"): 5.0, ("xs", "y"): 100.0,
                    ("ys", "x"): 100.0, ("ys", "y"): 5.0}))
    add(b, "ty", cap="y")
    add(b, "tx", cap="x")
    proposals = b.match(["xs", "ys"], 0.0)
    assert proposals == {"xs": "tx", "ys": "ty"}


def test_the_match_respects_capabilities() -> None:
    b = brain()
    join(b, "only-y", ["y"])
    join(b, "any")
    add(b, "tx", cap="x")
    proposals = b.match(["only-y", "any"], 0.0)
    assert proposals == {"any": "tx"}


def test_the_parked_match_finds_the_one_session_with_the_capability() -> None:
    """The parked sessions are reached through their capability index: among many parked
    sessions of other capabilities (more than one solve's `lsa_limit` counts), the one that
    can do the task gets it; one parked before its join was heard of is filed once it is;
    one whose poll was already woken is passed over; and one without capabilities takes it
    when nobody declared it."""
    b = brain(lsa_limit=4)
    for i in range(20):
        join(b, f"other-{i}", [f"c{i}"])
        b.waiting.add(f"other-{i}")
    b.waiting.add("late")  # parked before its join event arrived
    join(b, "late", ["rare"])
    join(b, "woken", ["rare"])
    b.waiting.add("woken")
    add(b, "t1", cap="rare")
    assert b.match(None, 0.0, lambda sid: sid != "woken") == {"late": "t1"}
    b.waiting.discard("late")
    assert b.match(None, 5.0, lambda sid: sid != "woken") == {}
    join(b, "any")
    b.waiting.add("any")
    assert b.match(None, 10.0, lambda sid: sid != "woken") == {"any": "t1"}


def test_an_ejected_session_gets_nothing_while_a_healthy_one_can_do_the_work() -> None:
    b = brain()
    join(b, "bad")
    join(b, "good")
    add(b, "t")
    b.quarantines[("bad", stats.ANY)] = Quarantine("bad", stats.ANY, 60.0, 1)
    assert b.decide(session("bad"), 10.0).task_id is None
    assert b.decide(session("good"), 10.0).task_id == "t"


def test_an_ejected_session_still_gets_work_nobody_healthy_can_do() -> None:
    b = brain()
    join(b, "bad", ["rare"])
    join(b, "good", ["x"])
    add(b, "t", cap="rare")
    b.quarantines[("bad", "rare")] = Quarantine("bad", "rare", 60.0, 1)
    assert b.decide(session("bad", ["rare"]), 10.0).task_id == "t"


def test_half_open_admits_one_probe() -> None:
    b = brain()
    join(b, "s")
    join(b, "other")
    add(b, "a")
    add(b, "b")
    b.quarantines[("s", "x")] = Quarantine("s", "x", 60.0, 1)
    assert b.decide(session("s"), 61.0).task_id == "a"
    claim(b, "a", "s", at=61.0)
    assert b.decide(session("s"), 62.0).task_id is None


def test_exploration_never_touches_the_critical_path() -> None:
    """With Thompson draws on, the chain's head still goes first, every time."""
    for seed in range(20):
        b = Brain(BrainParams(seed=seed))
        b.load([], [session("s")], trained({("s", "x"): 10.0}, n=1))
        add(b, "side")
        add(b, "head")
        add(b, "tail", deps=["head"])
        assert b.decide(session("s"), 0.0).task_id == "head"


def test_events_keep_the_picture() -> None:
    b = brain()
    join(b, "s")
    add(b, "a")
    add(b, "b", deps=["a"])
    claim(b, "a", "s", at=1.0)
    assert "a" not in b.ready and b.sessions["s"].running
    b.apply([ev("task.completed", 3.0, task_id="a", session_id="s", duration=2.0,
                stats={"x": stats.apply(PairStats(), ON_SUCCESS, 2.0).wire()}),
             ev("task.ready", 3.0, task_id="b", required_capability="x", priority=6)])
    assert "a" not in b.tasks and "b" in b.ready and not b.sessions["s"].running
    assert b.model.pair("s", "x").successes == 1
    b.apply([ev("task.cancelled", task_id="b", reason="r", session_id=None)])
    assert not b.tasks and not len(b.ready)


def test_holds_work_at_any_clock_reading() -> None:
    """Finish times are clock readings (epoch seconds): the tolerance applies to what is left
    of them, not to the readings themselves (a 15% tolerance of 1.8e9 s holds nothing)."""
    now = 1.8e9
    b = brain()
    b.load([], [session("fast"), session("slow")],
           trained({("fast", "x"): 10.0, ("slow", "x"): 40.0}))
    add(b, "busy")
    claim(b, "busy", "fast", at=now - 5.0)  # free again in about 5 s
    add(b, "t")
    d = b.decide(session("slow"), now)
    assert d.task_id is None and [h.session_id for h in d.holds] == ["fast"]
    assert 0 < d.holds[0].until - now <= 40.0 - 15.0 + 1.0
