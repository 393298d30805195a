"""The reference API's JSON Patch (RFC 6902): each operation, pointers, and every refusal.

Pure functions, so plain tables: the document, the patch, and the result or the error.
"""

import pytest

from scheduler_service.reference_api.jsonpatch import PatchError, apply_patch, changed_paths, validate

DOC = {"level": 2, "variables": {"food": 10, "tags": ["river", "walled"], "a/b": 1, "m~n": 2}}


@pytest.mark.parametrize("patch, expected", [
    # add: a new member, an existing member replaced, into an array, at its end ("-")
    ([{"op": "add", "path": "/variables/wood", "value": 3}],
     {**DOC, "variables": {**DOC["variables"], "wood": 3}}),
    ([{"op": "add", "path": "/level", "value": 5}], {**DOC, "level": 5}),
    ([{"op": "add", "path": "/variables/tags/1", "value": "port"}],
     {**DOC, "variables": {**DOC["variables"], "tags": ["river", "port", "walled"]}}),
    ([{"op": "add", "path": "/variables/tags/-", "value": "port"}],
     {**DOC, "variables": {**DOC["variables"], "tags": ["river", "walled", "port"]}}),
    ([{"op": "add", "path": "/variables/tags/2", "value": "port"}],
     {**DOC, "variables": {**DOC["variables"], "tags": ["river", "walled", "port"]}}),
    # the empty pointer is the whole document
    ([{"op": "add", "path": "", "value": {"level": 1}}], {"level": 1}),
    ([{"op": "replace", "path": "", "value": [1]}], [1]),
    # remove: a member, an array element
    ([{"op": "remove", "path": "/variables/food"}],
     {**DOC, "variables": {k: v for k, v in DOC["variables"].items() if k != "food"}}),
    ([{"op": "remove", "path": "/variables/tags/0"}],
     {**DOC, "variables": {**DOC["variables"], "tags": ["walled"]}}),
    # replace keeps an array element's place
    ([{"op": "replace", "path": "/variables/tags/0", "value": "lake"}],
     {**DOC, "variables": {**DOC["variables"], "tags": ["lake", "walled"]}}),
    # ~1 is "/" and ~0 is "~" inside a member name
    ([{"op": "replace", "path": "/variables/a~1b", "value": 9},
      {"op": "replace", "path": "/variables/m~0n", "value": 8}],
     {**DOC, "variables": {**DOC["variables"], "a/b": 9, "m~n": 8}}),
    # test passes silently and later operations still apply
    ([{"op": "test", "path": "/variables/tags", "value": ["river", "walled"]},
      {"op": "test", "path": "/variables/tags/1", "value": "walled"},
      {"op": "replace", "path": "/level", "value": 3}], {**DOC, "level": 3}),
    # move and copy, between members and array slots
    ([{"op": "move", "from": "/variables/food", "path": "/food"}],
     {**DOC, "food": 10, "variables": {k: v for k, v in DOC["variables"].items() if k != "food"}}),
    ([{"op": "move", "from": "/variables/tags/1", "path": "/variables/tags/0"}],
     {**DOC, "variables": {**DOC["variables"], "tags": ["walled", "river"]}}),
    ([{"op": "copy", "from": "/variables/tags", "path": "/tags"}],
     {**DOC, "tags": ["river", "walled"]}),
    ([{"op": "copy", "from": "/variables/food", "path": "/variables/tags/-"}],
     {**DOC, "variables": {**DOC["variables"], "tags": ["river", "walled", 10]}}),
])
def test_each_operation_gives_the_document_rfc_6902_describes(patch, expected):
    assert apply_patch(DOC, patch) == expected


def test_the_original_is_untouched_and_added_values_are_copies():
    value = {"nested": [1]}
    result = apply_patch(DOC, [{"op": "add", "path": "/variables/extra", "value": value},
                               {"op": "copy", "from": "/variables/tags", "path": "/copied"}])
    value["nested"].append(2)
    result["copied"].append("changed")
    assert result["variables"]["extra"] == {"nested": [1]}
    assert DOC["variables"]["tags"] == ["river", "walled"] and "extra" not in DOC["variables"]


def test_a_failing_operation_leaves_the_original_untouched():
    before = {"level": 1, "variables": {"food": 1}}
    with pytest.raises(PatchError, match="operation 1"):
        apply_patch(before, [{"op": "replace", "path": "/variables/food", "value": 2},
                             {"op": "remove", "path": "/variables/wood"}])
    assert before == {"level": 1, "variables": {"food": 1}}


@pytest.mark.parametrize("patch, message", [
    ({"op": "add"}, "a JSON Patch must be a list of operations"),
    (["add"], "operation 0: must be an object"),
    ([{"op": "jump", "path": "/x"}], "operation 0: op must be one of add, remove, replace, test, move, copy, got 'jump'"),
    ([{"path": "/x"}], "op must be one of .* got None"),
    ([{"op": "remove", "path": "variables"}], "path must be a JSON pointer like /variables/population, got 'variables'"),
    ([{"op": "remove", "path": 3}], "path must be a JSON pointer .* got 3"),
    ([{"op": "remove"}], "path must be a JSON pointer .* got None"),
    ([{"op": "add", "path": "/x"}], "operation 0: add needs a value"),
    ([{"op": "replace", "path": "/x"}], "operation 0: replace needs a value"),
    ([{"op": "test", "path": "/x"}], "operation 0: test needs a value"),
    ([{"op": "move", "path": "/x"}], "operation 0: path must be a JSON pointer .* got None"),
    ([{"op": "test", "path": "/level", "value": 2}, {"op": "copy", "path": "/x", "from": "x"}],
     "operation 1: path must be a JSON pointer .* got 'x'"),
])
def test_a_malformed_patch_is_refused_naming_the_operation(patch, message):
    with pytest.raises(PatchError, match=message):
        validate(patch)
    with pytest.raises(PatchError, match=message):
        apply_patch(DOC, patch)


@pytest.mark.parametrize("op, message", [
    ({"op": "remove", "path": "/variables/wood"}, r"operation 0 \(remove /variables/wood\): 'wood' does not exist"),
    ({"op": "add", "path": "/nowhere/x", "value": 1}, "'nowhere' does not exist"),
    ({"op": "replace", "path": "/variables/wood", "value": 1}, "'wood' does not exist"),
    ({"op": "test", "path": "/variables/food", "value": 11}, r"operation 0 \(test /variables/food\): test failed"),
    ({"op": "remove", "path": ""}, "cannot remove the whole document"),
    ({"op": "remove", "path": "/variables/tags/2"}, "index 2 is out of range"),
    ({"op": "add", "path": "/variables/tags/3", "value": 1}, "index 3 is out of range"),
    ({"op": "replace", "path": "/variables/tags/-", "value": 1}, "'-' is not an array index"),
    ({"op": "remove", "path": "/variables/tags/01"}, "'01' is not an array index"),
    ({"op": "remove", "path": "/variables/tags/x"}, "'x' is not an array index"),
    ({"op": "test", "path": "/variables/tags/0/x", "value": 1}, "cannot descend into a str"),
    ({"op": "test", "path": "/level/x", "value": 1}, "cannot descend into a int"),
    ({"op": "add", "path": "/level/x/y", "value": 1}, "cannot descend into a int"),
    ({"op": "add", "path": "/level/x", "value": 1}, "cannot add into a int"),
    ({"op": "remove", "path": "/level/x"}, "cannot remove from a int"),
    ({"op": "move", "from": "/variables", "path": "/variables/inner"}, "cannot move a value into itself"),
    ({"op": "move", "from": "/variables/wood", "path": "/wood"}, "'wood' does not exist"),
    ({"op": "copy", "from": "/variables/tags/5", "path": "/t"}, "index 5 is out of range"),
])
def test_an_operation_that_does_not_apply_names_its_index_path_and_reason(op, message):
    with pytest.raises(PatchError, match=message):
        apply_patch(DOC, [op])


def test_moving_a_value_onto_itself_changes_nothing():
    assert apply_patch(DOC, [{"op": "move", "from": "/level", "path": "/level"}]) == DOC


def test_changed_paths_lists_the_written_paths_once_in_order_without_tests():
    patch = [{"op": "test", "path": "/level", "value": 2},
             {"op": "replace", "path": "/variables/food", "value": 1},
             {"op": "move", "from": "/variables/tags", "path": "/tags"},
             {"op": "add", "path": "/variables/food", "value": 2},
             {"op": "copy", "from": "/level", "path": "/copy"}]
    assert changed_paths(patch) == ["/variables/food", "/tags", "/variables/tags", "/copy"]
