"""The GraphQL operations the scheduler sends, built once with sgqlc on the generated schema.

Each :class:`Prepared` operation holds its GraphQL text (rendered once, at import) and knows
how to turn the ``data`` of an answer into the dataclasses of
:mod:`scheduler_service.api.models`. Selections are derived from those dataclasses, so a
model field that the schema lacks fails at import, and every field a model declares is
always fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sgqlc.operation import Operation
from sgqlc.types import ID, Int, String, Variable, non_null

from . import schema as gql
from .models import (
    NESTED,
    Campaign,
    Effect,
    EffectExecutionResult,
    Event,
    Page,
    Settlement,
    Structure,
    from_sgqlc,
    scalar_field_names,
)


@dataclass(frozen=True)
class Prepared:
    """An operation ready to send: its name, GraphQL text and result converter.

    ``resend_safe`` is True for queries: sending one again changes nothing. Mutations are
    False: after a failure that may have applied one, the client checks what happened
    before it sends it again (see :meth:`scheduler_service.api.client.ApiClient.execute`).
    """

    name: str
    text: str
    operation: Operation
    root: str
    graphql_root: str
    convert: Callable[[Any], Any]
    resend_safe: bool = True
    #: For a document with several root fields: ``reader(typed, data) -> result``.
    reader: Callable[[Any, dict], Any] | None = None

    def interpret(self, data: dict) -> Any:
        """The typed result of the ``data`` member of a successful answer (None for null)."""
        if data[self.graphql_root] is None:
            return None  # sgqlc would give an empty object instead
        typed = self.operation + {"data": data}
        if self.reader is not None:
            return self.reader(typed, data)
        return self.convert(getattr(typed, self.root))


def _select(selector, model) -> None:
    selector.__fields__(*scalar_field_names(model))
    for name, nested in NESTED.get(model, {}).items():
        getattr(selector, name).__fields__(*scalar_field_names(nested))


def _one(model):
    return lambda value: from_sgqlc(model, value)


def _many(model):
    return lambda values: [from_sgqlc(model, v) for v in values]


def _page(model):
    def convert(conn):
        return Page(nodes=tuple(from_sgqlc(model, n) for n in conn.nodes),
                    has_next_page=conn.page_info.has_next_page,
                    end_cursor=conn.page_info.end_cursor)

    return convert


def _same(value):
    return value


def _prepare(kind, name: str, root: str, variables: dict, args: dict, model=None,
             shape: str = "one") -> Prepared:
    op = Operation(kind, name=name, variables=variables)
    selector = getattr(op, root)(**{k: Variable(v) for k, v in args.items()})
    if shape == "page":
        _select(selector.nodes, model)
        selector.page_info.__fields__("has_next_page", "end_cursor")
        convert = _page(model)
    elif model is not None:
        _select(selector, model)
        convert = _many(model) if shape == "many" else _one(model)
    else:
        convert = _same
    return Prepared(name=name, text=op.__to_graphql__(auto_select_depth=1), operation=op,
                    root=root, graphql_root=getattr(kind, root).graphql_name, convert=convert,
                    resend_safe=kind is not gql.Mutation)


_PAGED = {"campaignId": non_null(ID), "first": Int, "after": String}
_PAGED_ARGS = {"campaign_id": "campaignId", "first": "first", "after": "after"}
_BY_ID = {"id": non_null(ID)}

CAMPAIGNS = _prepare(gql.Query, "Campaigns", "campaigns", {}, {}, Campaign, "many")
CAMPAIGN = _prepare(gql.Query, "Campaign", "campaign", _BY_ID, {"id": "id"}, Campaign)
CURRENT_WORLD_TIME = _prepare(gql.Query, "GetCurrentWorldTime", "get_current_world_time",
                              {"campaignId": non_null(ID)}, {"campaign_id": "campaignId"})
OVERDUE_EVENTS = _prepare(gql.Query, "GetOverdueEvents", "get_overdue_events",
                          {**_PAGED, "gracePeriodMs": Int},
                          {**_PAGED_ARGS, "grace_period_ms": "gracePeriodMs"}, Event, "page")
EFFECT = _prepare(gql.Query, "GetEffect", "get_effect", _BY_ID, {"id": "id"}, Effect)
SETTLEMENTS_BY_CAMPAIGN = _prepare(gql.Query, "SettlementsByCampaign", "settlements_by_campaign",
                                   _PAGED, _PAGED_ARGS, Settlement, "page")
STRUCTURES_BY_CAMPAIGN = _prepare(gql.Query, "StructuresByCampaign", "structures_by_campaign",
                                  _PAGED, _PAGED_ARGS, Structure, "page")
STRUCTURES_BY_SETTLEMENT = _prepare(gql.Query, "StructuresBySettlement", "structures_by_settlement",
                                    {"settlementId": non_null(ID)},
                                    {"settlement_id": "settlementId"}, Structure, "many")
SETTLEMENT = _prepare(gql.Query, "Settlement", "settlement", _BY_ID, {"id": "id"}, Settlement)
STRUCTURE = _prepare(gql.Query, "Structure", "structure", _BY_ID, {"id": "id"}, Structure)
EVENT = _prepare(gql.Query, "Event", "event", _BY_ID, {"id": "id"}, Event)

EXPIRE_EVENT = _prepare(gql.Mutation, "ExpireEvent", "expire_event",
                        {"eventId": non_null(ID)}, {"event_id": "eventId"}, Event)
EXECUTE_EFFECT = _prepare(gql.Mutation, "ExecuteEffect", "execute_effect",
                          {"input": non_null(gql.ExecuteEffectInput)}, {"input": "input"},
                          EffectExecutionResult)
UPDATE_SETTLEMENT = _prepare(gql.Mutation, "UpdateSettlement", "update_settlement",
                             {"id": non_null(ID), "input": non_null(gql.UpdateSettlementInput)},
                             {"id": "id", "input": "input"}, Settlement)
UPDATE_STRUCTURE = _prepare(gql.Mutation, "UpdateStructure", "update_structure",
                            {"id": non_null(ID), "input": non_null(gql.UpdateStructureInput)},
                            {"id": "id", "input": "input"}, Structure)

def _unit_reader(typed, data):
    return (from_sgqlc(Settlement, typed.settlement),
            [from_sgqlc(Structure, s) for s in typed.structures_by_settlement])


def _unit() -> Prepared:
    """A settlement and its structures in one request (two root fields of the contract)."""
    op = Operation(gql.Query, name="Unit", variables={"id": non_null(ID)})
    _select(op.settlement(id=Variable("id")), Settlement)
    _select(op.structures_by_settlement(settlement_id=Variable("id")), Structure)
    return Prepared(name="Unit", text=op.__to_graphql__(auto_select_depth=1), operation=op,
                    root="settlement", graphql_root="settlement", convert=_same,
                    reader=_unit_reader)


UNIT = _unit()

#: Every operation the client sends, by name.
ALL: dict[str, Prepared] = {p.name: p for p in (
    CAMPAIGNS, CAMPAIGN, CURRENT_WORLD_TIME, OVERDUE_EVENTS, EFFECT, SETTLEMENTS_BY_CAMPAIGN,
    STRUCTURES_BY_CAMPAIGN, STRUCTURES_BY_SETTLEMENT, SETTLEMENT, STRUCTURE, EVENT,
    EXPIRE_EVENT, EXECUTE_EFFECT, UPDATE_SETTLEMENT, UPDATE_STRUCTURE, UNIT,
)}

