"""The learners API: learners, courses, enrollments, events (under /api/v1/, namespace v1)."""

from django.urls import path

from expansion.core.api import converters  # noqa: F401 - registers <ext:…>

from . import api

api_urlpatterns = [
    path("learners/", api.LearnerList.as_view(), name="learner-list"),
    path("learners/bulk/", api.LearnerBulk.as_view(), name="learner-bulk"),
    path("learners/<ext:external_id>/", api.LearnerDetail.as_view(), name="learner-detail"),
    path(
        "learners/<ext:external_id>/scores/",
        api.LearnerScores.as_view(),
        name="learner-scores",
    ),
    path("courses/", api.CourseList.as_view(), name="course-list"),
    path("courses/bulk/", api.CourseBulk.as_view(), name="course-bulk"),
    path("courses/<ext:external_id>/", api.CourseDetail.as_view(), name="course-detail"),
    path("enrollments/", api.EnrollmentList.as_view(), name="enrollment-list"),
    path("enrollments/bulk/", api.EnrollmentBulk.as_view(), name="enrollment-bulk"),
    path("enrollments/<int:pk>/", api.EnrollmentDetail.as_view(), name="enrollment-detail"),
    path("events/", api.EventList.as_view(), name="event-list"),
    path("events/bulk/", api.EventIngest.as_view(), name="event-bulk"),
    path("events/<int:pk>/", api.EventDetail.as_view(), name="event-detail"),
]
