from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import PasswordResetForm, _unicode_ci_compare

UserModel = get_user_model()


class DateOfBirthPasswordResetForm(PasswordResetForm):
    """Django's reset form, also asking for the date of birth (as Gatehouse
    asks for email address and date of birth). A link is sent only to an
    active account with a usable password whose email (case-insensitive) and
    date of birth both match; the response is the same either way."""

    date_of_birth = forms.DateField(
        label="Date of birth (YYYY-MM-DD)", input_formats=["%Y-%m-%d"]
    )

    def get_users(self, email):
        email_field_name = UserModel.get_email_field_name()
        active_users = UserModel._default_manager.filter(
            **{
                "%s__iexact" % email_field_name: email,
                "is_active": True,
                "profile__date_of_birth": self.cleaned_data["date_of_birth"],
            }
        )
        return (
            u
            for u in active_users
            if u.has_usable_password()
            and _unicode_ci_compare(email, getattr(u, email_field_name))
        )
