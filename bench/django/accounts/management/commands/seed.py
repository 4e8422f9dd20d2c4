"""python manage.py seed N: users U00000..U{N-1} named Pat Doe{i}, email
pat.{i}@nhs.net, date of birth 1980-01-01, password "kettle violin marmalade".

The argon2 hash is computed once and the same encoded string is given to
every user, so seeding 100,000 users takes seconds. Users already present
(by username) are left alone, so the command can be run again."""
import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Profile

PASSWORD = "kettle violin marmalade"
DATE_OF_BIRTH = datetime.date(1980, 1, 1)
BATCH = 5000


class Command(BaseCommand):
    help = "Create N sign-in test users with profiles (same password hash for all)."

    def add_arguments(self, parser):
        parser.add_argument("n", type=int)

    def handle(self, *args, n, **options):
        User = get_user_model()
        encoded = make_password(PASSWORD)  # the first hasher: argon2id t=2 m=19456 p=1
        existing = set(
            User.objects.filter(username__startswith="U").values_list("username", flat=True)
        )
        created = 0
        with transaction.atomic():
            for start in range(0, n, BATCH):
                users = [
                    User(
                        username=f"U{i:05d}",
                        email=f"pat.{i}@nhs.net",
                        first_name="Pat",
                        last_name=f"Doe{i}",
                        password=encoded,
                    )
                    for i in range(start, min(n, start + BATCH))
                    if f"U{i:05d}" not in existing
                ]
                if not users:
                    continue
                User.objects.bulk_create(users)
                ids = User.objects.filter(
                    username__in=[u.username for u in users]
                ).values_list("id", flat=True)
                Profile.objects.bulk_create(
                    [Profile(user_id=uid, date_of_birth=DATE_OF_BIRTH) for uid in ids]
                )
                created += len(users)
        if options["verbosity"] >= 1:
            self.stdout.write(f"seeded {created} users ({n - created} already there)")
