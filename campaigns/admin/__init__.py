"""The campaigns admin: campaigns (``campaign``, with their actions and pages), sends
(``sends``), journey moments and the guardrail policy (``policy``)."""

from . import campaign, policy, sends

__all__ = ["campaign", "policy", "sends"]
