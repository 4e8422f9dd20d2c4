"""The claims the OpenID Connect peer releases, as Gatehouse releases them
for the scopes `openid profile email`: django-oauth-toolkit's validator
gives only `sub` unless told more."""
from oauth2_provider.oauth2_validators import OAuth2Validator


class StaffClaimsValidator(OAuth2Validator):
    def get_additional_claims(self, request):
        user = request.user
        return {
            "preferred_username": user.username,
            "name": f"{user.first_name} {user.last_name}",
            "given_name": user.first_name,
            "family_name": user.last_name,
            "email": user.email,
        }
