from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from recoup.web.app import create_app
from tests.auth import make_user


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine)) as c:
        c.headers.update(make_user(engine, "admin").headers)
        yield c
