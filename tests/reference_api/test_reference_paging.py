"""Cursor pagination: settlements, structures and overdue events."""

import time

T0 = "2026-03-01T12:00:00.000Z"

SETTLEMENTS = """
query($c: ID!, $first: Int, $after: String) {
  settlementsByCampaign(campaignId: $c, first: $first, after: $after) {
    nodes { id campaignId } pageInfo { hasNextPage endCursor }
  }
}"""
STRUCTURES = """
query($c: ID!, $first: Int, $after: String) {
  structuresByCampaign(campaignId: $c, first: $first, after: $after) {
    nodes { id campaignId } pageInfo { hasNextPage endCursor }
  }
}"""
OVERDUE = """
query($c: ID!, $grace: Int, $first: Int, $after: String) {
  getOverdueEvents(campaignId: $c, gracePeriodMs: $grace, first: $first, after: $after) {
    nodes { id name scheduledAt isCompleted } pageInfo { hasNextPage endCursor }
  }
}"""


def _all_pages(api, query, field, variables):
    nodes, pages, after = [], [], None
    while True:
        page = api.data(query, {**variables, "after": after})[field]
        nodes += page["nodes"]
        pages.append(len(page["nodes"]))
        if not page["pageInfo"]["hasNextPage"]:
            return nodes, pages, page["pageInfo"]
        after = page["pageInfo"]["endCursor"]


def test_paging_through_1200_settlements_returns_each_once_in_order(reference_api):
    # Given a campaign with 1,200 settlements (created 200 per request) and another campaign
    camp = reference_api.make_campaign()
    kingdom = reference_api.make_kingdom(camp["id"])
    started = time.monotonic()
    ids = reference_api.make_settlements(kingdom["id"], 1200, variables={"population": 100})
    created_in = time.monotonic() - started
    reference_api.make_world(settlements=3)

    # When a client pages with the largest page
    nodes, pages, last = _all_pages(reference_api, SETTLEMENTS, "settlementsByCampaign",
                                    {"c": camp["id"], "first": 500})

    # Then it sees every settlement exactly once, in creation order, in three pages
    assert [n["id"] for n in nodes] == ids
    assert {n["campaignId"] for n in nodes} == {camp["id"]}
    assert pages == [500, 500, 200]
    assert last["hasNextPage"] is False and last["endCursor"]
    assert created_in < 20, f"creating 1,200 settlements took {created_in:.1f}s"


def test_default_page_size_and_page_size_limits(reference_api):
    camp = reference_api.make_campaign()
    reference_api.make_settlements(reference_api.make_kingdom(camp["id"])["id"], 120)
    page = reference_api.data(SETTLEMENTS, {"c": camp["id"]})["settlementsByCampaign"]
    assert len(page["nodes"]) == 100 and page["pageInfo"]["hasNextPage"] is True
    for first in (0, 501, -1):
        body = reference_api.gql(SETTLEMENTS, {"c": camp["id"], "first": first})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "first must be between 1 and 500" in body["errors"][0]["message"]


def test_cursor_of_another_list_or_garbage_is_refused(reference_api):
    world = reference_api.make_world(settlements=2, structures=1)
    camp = world["campaign"]["id"]
    cursor = reference_api.data(SETTLEMENTS, {"c": camp, "first": 1})[
        "settlementsByCampaign"]["pageInfo"]["endCursor"]
    for query, after in [(STRUCTURES, cursor), (SETTLEMENTS, "garbage!"), (SETTLEMENTS, "eyJ4Ijox")]:
        body = reference_api.gql(query, {"c": camp, "after": after})
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert "after" in body["errors"][0]["message"]


def test_structures_by_campaign_pages(reference_api):
    world = reference_api.make_world(settlements=3, structures=3)
    nodes, pages, _ = _all_pages(reference_api, STRUCTURES, "structuresByCampaign",
                                 {"c": world["campaign"]["id"], "first": 4})
    assert [n["id"] for n in nodes] == [s["id"] for s in world["structures"]]
    assert pages == [4, 4, 1]


def test_empty_connection(reference_api):
    camp = reference_api.make_campaign()
    page = reference_api.data(SETTLEMENTS, {"c": camp["id"]})["settlementsByCampaign"]
    assert page == {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


def test_overdue_events_oldest_first_after_the_grace_period(reference_api):
    camp = reference_api.make_campaign(world_time=T0)["id"]
    make = reference_api.make_event
    late_1h = make(camp, "2026-03-01T11:00:00Z", name="late 1h")
    late_1d = make(camp, "2026-02-28T12:00:00Z", name="late 1d")
    same_time = make(camp, "2026-03-01T11:00:00Z", name="late 1h too")
    make(camp, "2026-03-01T11:57:00Z", name="within the 5-minute grace")
    make(camp, "2026-03-01T13:00:00Z", name="future")
    make(camp, None, name="unscheduled")
    done = make(camp, "2026-02-01T00:00:00Z", name="completed")
    reference_api.data("mutation($id: ID!) { expireEvent(eventId: $id) { id } }", {"id": done["id"]})

    page = reference_api.data(OVERDUE, {"c": camp})["getOverdueEvents"]
    assert [e["id"] for e in page["nodes"]] == [late_1d["id"], late_1h["id"], same_time["id"]]
    assert page["pageInfo"]["hasNextPage"] is False

    # A zero grace period includes the event 3 minutes overdue
    names = [e["name"] for e in reference_api.data(OVERDUE, {"c": camp, "grace": 0})[
        "getOverdueEvents"]["nodes"]]
    assert names == ["late 1d", "late 1h", "late 1h too", "within the 5-minute grace"]

    # Paging one by one keeps the order, ties included
    nodes, pages, _ = _all_pages(reference_api, OVERDUE, "getOverdueEvents",
                                 {"c": camp, "first": 1})
    assert [e["id"] for e in nodes] == [late_1d["id"], late_1h["id"], same_time["id"]]

    # Advancing the clock makes the future event overdue
    reference_api.advance(camp, "2026-03-01T14:00:00Z")
    assert "future" in [e["name"] for e in reference_api.data(OVERDUE, {"c": camp})[
        "getOverdueEvents"]["nodes"]]


def test_overdue_events_empty_without_world_clock(reference_api):
    camp = reference_api.make_campaign()["id"]
    reference_api.make_event(camp, "2020-01-01T00:00:00Z")
    page = reference_api.data(OVERDUE, {"c": camp})["getOverdueEvents"]
    assert page == {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}


def test_negative_grace_period_is_refused(reference_api):
    camp = reference_api.make_campaign(world_time=T0)["id"]
    body = reference_api.gql(OVERDUE, {"c": camp, "grace": -1})
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "gracePeriodMs" in body["errors"][0]["message"]
