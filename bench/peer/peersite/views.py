from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView


class Me(APIView):
    """Bearer access token (JWTAuthentication: verify + one SELECT of the user), as jwtd's /api/me/."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"user_id": str(request.user.id), "username": request.user.username})


class Healthz(APIView):
    """The peer's /healthz: a DRF view without authentication, the framework's floor."""

    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"status": "ok"})
