"""The generated sgqlc schema and the operations built on it match schema.graphql."""

import subprocess
import sys
from pathlib import Path

import pytest
from graphql import build_schema, parse, validate

from scheduler_service.api import codegen, operations

ROOT = Path(__file__).resolve().parents[2]


def test_the_checked_in_schema_module_is_what_codegen_generates(tmp_path):
    # the command the docs (and the failure below) tell people to run
    result = subprocess.run([sys.executable, "-m", "scheduler_service.api.codegen",
                             "--sdl", str(ROOT / "schema.graphql"),
                             "--output", str(tmp_path / "schema.py")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    generated = Path(result.stdout.strip())
    assert generated == tmp_path / "schema.py"
    checked_in = Path(codegen.DEFAULT_OUTPUT).read_text(encoding="utf-8")
    assert generated.read_text(encoding="utf-8") == checked_in, (
        "scheduler_service/api/schema.py is stale: run python -m scheduler_service.api.codegen")


@pytest.mark.parametrize("name", sorted(operations.ALL))
def test_every_operation_is_valid_against_the_contract(name):
    schema = build_schema((ROOT / "schema.graphql").read_text(encoding="utf-8"))
    assert validate(schema, parse(operations.ALL[name].text)) == []


def test_the_client_covers_the_operations_of_the_contract():
    roots = {p.text.split("{", 2)[1].split("(")[0].strip() for p in operations.ALL.values()}
    assert roots == {
        "campaigns", "campaign", "getCurrentWorldTime", "getOverdueEvents", "getEffect",
        "settlementsByCampaign", "structuresByCampaign", "structuresBySettlement", "settlement",
        "structure", "event", "expireEvent", "executeEffect", "updateSettlement", "updateStructure",
    }


def test_an_answer_becomes_frozen_dataclasses_with_aware_datetimes():
    effect = operations.EFFECT.interpret({"getEffect": {
        "id": "e1", "name": "Harvest", "effectType": "patch",
        "payload": [{"op": "add", "path": "/variables/food", "value": 5}],
        "entityType": "Settlement", "entityId": "s1", "timing": "ON_RESOLVE", "priority": 0,
        "isActive": True, "version": 3,
        "executions": [{"id": "x1", "effectId": "e1", "executedAt": "2026-03-01T12:00:00.000Z",
                        "executedBy": "svc", "context": {"schedulerJobId": "job-1"},
                        "result": None, "error": None}],
    }})
    assert effect.payload[0]["value"] == 5 and effect.timing == "ON_RESOLVE"
    execution = effect.execution_for_job("job-1")
    assert execution.id == "x1" and execution.executed_at.utcoffset().total_seconds() == 0
    assert effect.execution_for_job("job-2") is None
    with pytest.raises(AttributeError):
        effect.name = "changed"


def test_a_null_entity_is_none_not_an_empty_object():
    assert operations.SETTLEMENT.interpret({"settlement": None}) is None
    assert operations.CURRENT_WORLD_TIME.interpret({"getCurrentWorldTime": None}) is None
