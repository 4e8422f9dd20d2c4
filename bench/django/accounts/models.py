from django.conf import settings
from django.db import models


class Profile(models.Model):
    """What Django's user lacks and Gatehouse's recovery asks for."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    date_of_birth = models.DateField()

    def __str__(self):
        return f"{self.user} ({self.date_of_birth})"
