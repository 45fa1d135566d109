"""Tests of the request checks shared by both wire protocols."""

import pytest

from recship.errors import BadRequestError
from recship.serving.protocol import check_rank_request, describe_value
from recship.serving.request import RankRequest


def test_context_feature_may_hold_one_value_for_all_items() -> None:
    request = RankRequest(item_ids=["a", "b", "c"], context_features={"h": [1]})
    assert check_rank_request(request) is request


def test_context_feature_may_hold_one_value_per_item() -> None:
    request = RankRequest(item_ids=["a", "b"], context_features={"h": [1, 2]})
    assert check_rank_request(request) is request


def test_empty_context_feature_names_the_feature() -> None:
    request = RankRequest(item_ids=["a", "b"], context_features={"h": []})
    with pytest.raises(BadRequestError, match=r"context_features\['h'\] has 0"):
        check_rank_request(request)


def test_negative_debug_level_is_rejected() -> None:
    with pytest.raises(BadRequestError, match="debug_level is -1"):
        check_rank_request(RankRequest(item_ids=["a"], debug_level=-1))


@pytest.mark.parametrize(
    ("value", "text"),
    [(1, "an int"), (1.5, "a float"), ("s", "a str"), (None, "null"), ([], "a list")],
)
def test_describe_value_names_the_json_kind(value, text) -> None:
    assert describe_value(value) == text
