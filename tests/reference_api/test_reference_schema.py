"""The schema the reference API reports is exactly ``schema.graphql``."""

from pathlib import Path

from graphql import (build_client_schema, build_schema, find_breaking_changes,
                     find_dangerous_changes, get_introspection_query, print_schema)

import scheduler_service.reference_api.schema as served

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema.graphql"


def test_introspection_equals_schema_file(reference_api):
    # Given the SDL file and the schema the live server reports
    body = reference_api.gql(get_introspection_query(descriptions=True))
    assert "errors" not in body
    reported = build_client_schema(body["data"])
    expected = build_schema(SCHEMA_FILE.read_text())

    # Then they print identically, descriptions included, and differ in no direction
    assert print_schema(reported) == print_schema(expected)
    assert find_breaking_changes(expected, reported) == []
    assert find_dangerous_changes(expected, reported) == []
    assert find_breaking_changes(reported, expected) == []


def test_packaged_schema_is_the_top_level_file():
    assert served.SCHEMA_PATH.read_bytes() == SCHEMA_FILE.read_bytes()


def test_every_query_and_mutation_has_a_resolver():
    schema = served.executable_schema()
    for root in (schema.query_type, schema.mutation_type):
        for name, field in root.fields.items():
            assert field.resolve is not None, f"{root.name}.{name}"


def test_contract_operations_are_all_declared():
    schema = build_schema(SCHEMA_FILE.read_text())
    assert set(schema.query_type.fields) == {
        "campaigns", "campaign", "getCurrentWorldTime", "getOverdueEvents", "getEffect",
        "settlementsByCampaign", "structuresByCampaign", "structuresBySettlement", "settlement",
        "structure", "event"}
    assert set(schema.mutation_type.fields) == {
        "expireEvent", "executeEffect", "updateSettlement", "updateStructure", "advanceWorldTime",
        "createCampaign", "createKingdom", "createSettlement", "createStructure", "createEvent",
        "createEffect"}
    assert list(schema.type_map["EffectTiming"].values) == ["PRE", "ON_RESOLVE", "POST"]
    for name, t in schema.type_map.items():
        if not name.startswith("__"):
            assert t.description, f"{name} has no description"
            for fname, f in getattr(t, "fields", {}).items():
                assert f.description, f"{name}.{fname} has no description"
