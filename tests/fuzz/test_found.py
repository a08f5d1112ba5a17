"""What the fuzzing found, pinned: the accepting side of each fix (test_hostile.py holds the
refusing side, test_schemathesis.py the schema's side)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from unified_swarm.config import Settings

OPERATOR = "found-operator-token"


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    settings = Settings(data_dir=tmp_path_factory.mktemp("found"), token=OPERATOR,
                        rate_limit=0, max_wait=0.2)
    server = LiveServer(settings).start()
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"authorization": f"Bearer {OPERATOR}"}) as op:
        r = op.post("/session/register", json={"id": "team/w1", "capabilities": ["build"]})
        assert r.status_code == 201, r.text
        yield {"server": server, "op": op, "w1": {"authorization": f"Bearer {r.json()['token']}"}}
    server.stop()


def test_ids_with_a_slash_are_addressable(swarm: dict[str, Any]) -> None:
    """ID_RE allows "/", but `{task_id}` matched one segment: such a task or session could
    not be read, cancelled, drained or removed. The id routes take a path converter."""
    op: httpx.Client = swarm["op"]
    assert op.post("/work", json={"id": "proj/a/build-1", "type": "build"}).status_code == 201
    assert op.get("/work/proj/a/build-1").json()["task"]["id"] == "proj/a/build-1"
    assert op.get("/session/team/w1").json()["session"]["id"] == "team/w1"
    assert op.post("/work/proj/a/build-1/cancel").json()["task"]["status"] == "cancelled"
    assert op.post("/session/team/w1/drain").json()["session"]["status"] == "draining"
    assert op.delete("/session/team/w1", headers=swarm["w1"]).status_code == 200


def test_405_names_every_method_of_the_path(swarm: dict[str, Any]) -> None:
    """Starlette's 405 named only the first route's methods (POST for /work)."""
    op: httpx.Client = swarm["op"]
    for path, allow in [("/work", "GET, POST"), ("/swarm/interrupt", "DELETE, POST"),
                        ("/knowledge/a/b", "DELETE, GET, PUT"), ("/session/x", "DELETE, GET"),
                        ("/session/register", "POST"), ("/work/x/cancel", "POST")]:
        r = op.request("TRACE", path)
        assert (r.status_code, r.headers["allow"]) == (405, allow)


def test_integers_may_be_written_as_whole_floats(swarm: dict[str, Any]) -> None:
    """JSON Schema counts 5.0 as an integer; strict pydantic refused it (422)."""
    op: httpx.Client = swarm["op"]
    r = op.post("/work", json={"type": "build", "priority": 7.0, "max_attempts": 2.0})
    assert r.status_code == 201, r.text
    assert (r.json()["tasks"][0]["priority"], r.json()["tasks"][0]["max_attempts"]) == (7, 2)
    r = op.put("/knowledge/nums", json={"content": 1, "expected_version": 0.0})
    assert r.status_code == 200, r.text
    for bad in (7.5, "7", True):
        assert op.post("/work", json={"type": "build", "priority": bad}).status_code == 422


def test_the_largest_safe_integer_is_a_valid_token(swarm: dict[str, Any]) -> None:
    """Tokens and versions stop at 2**53-1, where JSON numbers stop being exact."""
    op: httpx.Client = swarm["op"]
    r = op.put("/knowledge/big", json={"content": 1, "expected_version": 2**53 - 1})
    assert r.status_code == 409  # a stale version, not a refused number


def test_a_long_poll_is_cut_to_max_wait(swarm: dict[str, Any]) -> None:
    """A schema-valid wait (<= 60) past the server's max_wait answers 204 at max_wait, not a
    400 the schema did not announce; past 60 is still refused."""
    op: httpx.Client = swarm["op"]
    r = op.post("/session/register", json={"id": "poller", "capabilities": ["nothing-here"]})
    me = {"authorization": f"Bearer {r.json()['token']}"}
    started = time.monotonic()
    assert op.get("/work/request", params={"wait": 30}, headers=me).status_code == 204
    assert time.monotonic() - started < 5
    assert op.get("/work/request", params={"wait": 61}, headers=me).status_code == 400


def test_metadata_within_the_cap_is_kept(swarm: dict[str, Any]) -> None:
    op: httpx.Client = swarm["op"]
    meta = {"host": "h", "notes": "n" * 100_000}
    r = op.post("/session/register", json={"capabilities": ["build"], "metadata": meta})
    assert r.status_code == 201 and r.json()["session"]["metadata"] == meta


def test_topics_with_slashes_dots_and_scripts_are_fine(swarm: dict[str, Any]) -> None:
    """The topic rule refuses controls, invisible/bidi characters and empty/dot segments,
    and nothing a person would name a topic."""
    op: httpx.Client = swarm["op"]
    for topic in ("design/api", "v1.2/notes", "...", ".hidden", "a..b", "العربية", "日本語",
                  "emoji 🎉", "50% done"):
        r = op.put(f"/knowledge/{topic}", json={"content": topic})
        assert r.status_code == 200, (topic, r.text)
        assert op.get(f"/knowledge/{topic}").json()["entry"]["content"] == topic


def test_64_bit_integers_and_long_digit_strings_round_trip(swarm: dict[str, Any]) -> None:
    """orjson reads an integer past 64 bits as a float (18446744073709551616 came back as
    1.8446744073709552e19); those are refused now (test_hostile), and everything orjson
    holds exactly still round-trips, digit strings included."""
    op: httpx.Client = swarm["op"]
    value = {"max": 2**64 - 1, "min": -(2**63), "digits": "1" * 40, "float": 1.5e300}
    r = op.post("/work", json={"type": "build", "input": value})
    assert r.status_code == 201, r.text
    assert op.get(f"/work/{r.json()['tasks'][0]['id']}").json()["task"]["input"] == value
