from django.apps import AppConfig


class DicomNodeConfig(AppConfig):
    name = "dicomnode"
    verbose_name = "DICOM node"
