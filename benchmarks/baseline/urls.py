from django.urls import path
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit
from rest_framework.response import Response
from rest_framework.views import APIView


@method_decorator(ratelimit(key="header:authorization", rate="1000000/s", block=False), name="post")
class ProtectedView(APIView):
    def post(self, request):
        limited = getattr(request, "limited", False)
        return Response({"allowed": not limited})


urlpatterns = [path("protected", ProtectedView.as_view())]
