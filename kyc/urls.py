from django.urls import path

from . import api

urlpatterns = [
    path("api/kyc/documents", api.KycDocumentCreate.as_view(), name="kyc-documents"),
    path("api/kyc/cases", api.KycCaseList.as_view(), name="kyc-cases"),
    path("api/kyc/cases/<uuid:pk>", api.KycCaseDetail.as_view(), name="kyc-case"),
    path("api/kyc/cases/<uuid:pk>/rerun", api.KycRerun.as_view()),
    path("api/kyc/users/<str:user_id>", api.UserKycStatusDetail.as_view()),
    path("api/kyc/callbacks/<str:provider>", api.provider_callback, name="kyc-callback"),
]
