from __future__ import annotations

from django.urls import path

from sgm.nomina import views

app_name = "nomina"

urlpatterns = [
    path("consolidar/", views.launch_consolidation, name="launch_consolidation"),
]
