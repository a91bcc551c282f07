"""`make run` prints the admin and the demo's course-creator logins once; each works."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from expansion.demo.data import demo_seed

pytestmark = pytest.mark.django_db


def test_the_demo_creators_get_a_login_printed_once_and_can_sign_in():
    demo_seed(learners=40)
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    printed = dict(re.findall(r"Course creator login: (\w+) / (\S+)", out.getvalue()))
    assert sorted(printed) == ["creator_ana", "creator_ben"]
    assert re.search(r"Admin login created: admin / \S+", out.getvalue())
    client = Client()
    assert client.login(username="creator_ana", password=printed["creator_ana"])
    assert client.get("/admin/campaigns/campaign/").status_code == 200
    assert client.get("/admin/learners/learner/").status_code == 403  # not a creator's room
    again = StringIO()
    call_command("ensure_admin", stdout=again)
    assert "Course creator login" not in again.getvalue()  # once
    assert "already exists" in again.getvalue()
