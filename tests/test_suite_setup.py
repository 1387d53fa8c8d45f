"""The test suite's own set-up: it must never touch a Redis it did not start, unless told."""

from __future__ import annotations

import os

import pytest

from tests.servers import RedisServer


def test_the_suite_runs_on_a_server_it_started_or_was_given(redis_base_url: str | None) -> None:
    if redis_base_url is None:
        pytest.skip("no redis-server binary: the suite runs on the embedded backend")
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        assert redis_base_url == given
    else:
        assert redis_base_url in RedisServer.started_urls
