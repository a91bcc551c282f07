"""The error a refused campaign step raises (``campaigns.lifecycle``, ``campaigns.approval``)."""

from __future__ import annotations


class CampaignError(Exception):
    """The step is refused; ``problems`` says why, each in words a marketer can act on."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
