"""The campaigns admin: campaigns (``campaign``, with their actions and pages), sends
(``sends``), journey moments and the guardrail policy (``policy``)."""

from django.contrib import admin

from . import campaign, policy, sends

__all__ = ["campaign", "policy", "sends"]

# The home page opens with what needs a person: campaigns paused by failures, the mail server
# when unreachable (campaigns/templatetags/campaigns_attention.py).
admin.site.index_template = "campaigns/admin_index.html"
