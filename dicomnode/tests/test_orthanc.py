"""Orthanc as the destination: a real Orthanc (temp config, free ports) receives
the results of a ready study by C-STORE, and its REST API lists them in the study's
own StudyInstanceUID: the report, the key images and the structured report."""

from pydicom.uid import (
    Comprehensive3DSRStorage,
    EncapsulatedPDFStorage,
    SecondaryCaptureImageStorage,
)

from dicomnode.models import Delivery, DeliveryState

from .conftest import lesion_analysis


def test_results_arrive_in_orthanc(
    analysed_study,
    phantom,
    orthanc,
    destination,
    eager_celery,
    django_capture_on_commit_callbacks,
):
    destination(orthanc.dicom_port, ae_title=orthanc.ae_title, name="Orthanc")

    with django_capture_on_commit_callbacks(execute=True):
        study = analysed_study(lesion_analysis(phantom, volume_ml=8.0))

    deliveries = Delivery.objects.filter(study=study)
    assert {(d.kind, d.state) for d in deliveries} == {
        ("pdf", DeliveryState.SENT),
        ("sc", DeliveryState.SENT),
        ("sr", DeliveryState.SENT),
    }
    (orthanc_study,) = orthanc.get("/studies")
    tags = orthanc.get(f"/studies/{orthanc_study}")["MainDicomTags"]
    assert tags["StudyInstanceUID"] == study.study_instance_uid
    classes = [
        orthanc.get(f"/instances/{i}/tags?simplify")["SOPClassUID"]
        for i in orthanc.get("/instances")
    ]
    assert classes.count(EncapsulatedPDFStorage) == 1
    assert classes.count(Comprehensive3DSRStorage) == 1
    assert classes.count(SecondaryCaptureImageStorage) >= 1
    # The SR Orthanc holds is the one the delivery recorded.
    (found,) = orthanc.post("/tools/lookup", deliveries.get(kind="sr").sop_instance_uid)
    assert found["Type"] == "Instance"
