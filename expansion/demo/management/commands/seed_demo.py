from datetime import date

from django.core.management.base import BaseCommand

from campaigns.evaluate import campaigns_evaluate
from expansion.commerce.affinity import affinity_refresh
from expansion.demo.data import demo_seed
from learners.models import Learner
from learners.scoring import score_learners


class Command(BaseCommand):
    help = "Load deterministic demo data (same seed and anchor date, same rows)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--learners", type=int, default=3000)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--anchor",
            type=date.fromisoformat,
            default=None,
            help="'Today' of the data (YYYY-MM-DD).",
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when learners already exist."
        )

    def handle(self, *args, learners: int, seed: int, anchor, if_empty: bool, **options) -> None:
        if Learner.objects.exists():
            if if_empty:
                self.stdout.write("Demo data: the database already has learners; left as is.")
                return
            self.stderr.write("The database already has learners; seed_demo needs an empty one.")
            raise SystemExit(1)
        counts = demo_seed(learners=learners, seed=seed, anchor=anchor)
        scored = score_learners(full=True)
        affinity = affinity_refresh()
        decided = campaigns_evaluate()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {counts.learners} learners, {counts.courses} courses, "
                f"{counts.enrollments} enrollments, {counts.events} events, "
                f"{counts.orders} orders, {counts.subscriptions} subscriptions; "
                f"{scored.learners} learners scored; {affinity.pairs} product pairs; "
                f"campaigns decided {decided.candidates} sends ({decided.queued} queued)."
            )
        )
