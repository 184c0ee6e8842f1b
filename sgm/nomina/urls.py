from __future__ import annotations

from django.urls import path

from sgm.nomina import views

app_name = "nomina"

urlpatterns = [
    path("", views.index, name="index"),
    path("consolidar/", views.launch_consolidation, name="launch_consolidation"),
    path("lanzar/<slug:tarea>/", views.launch, name="launch"),
]
