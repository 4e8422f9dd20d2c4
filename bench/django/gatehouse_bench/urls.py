from django.contrib.auth import views as auth_views
from django.urls import include, path

from accounts import views
from accounts.forms import DateOfBirthPasswordResetForm

urlpatterns = [
    path("login", auth_views.LoginView.as_view(), name="login"),
    path("logout", auth_views.LogoutView.as_view(), name="logout"),
    path("account", views.account, name="account"),
    # django-oauth-toolkit: /o/authorize/, /o/token/, /o/userinfo/,
    # /o/.well-known/jwks.json, /o/.well-known/openid-configuration
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path(
        "forgotten",
        auth_views.PasswordResetView.as_view(
            form_class=DateOfBirthPasswordResetForm,
            success_url="/forgotten/done",
        ),
        name="password_reset",
    ),
    path(
        "forgotten/done",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
]
