"""Session and scan data types of imported DICOM, as XNAT 1.8.11 assigns them.

Follows NRG's TestDicomModalityAssignment: a scan's type comes from its SOP class where that
names a kind of object (secondary capture, RT structure set), else from its Modality, else
(1.8.5+) from the modality its SOP class implies. The session takes the type of its primary
imaging modality: PET wins over CT (PET/CT is a PET session); PET with MR is a PET/MR session
or, with the site's PET/MR setting `pet` (`HandlePetMr`, `sitewidePetMr`), a PET session; an
RT structure set or a secondary capture beside MR or CT leaves the MR or CT session; a modality
XNAT has no session type for gives `xnat:otherDicomSessionData`.
"""

from __future__ import annotations

SC_SOP_PREFIX = "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage and its kin
RT_STRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"
SOP_MODALITY = {
    "1.2.840.10008.5.1.4.1.1.4": "MR",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.1": "MR",  # Enhanced MR
    "1.2.840.10008.5.1.4.1.1.4.2": "MR",  # MR Spectroscopy
    "1.2.840.10008.5.1.4.1.1.2": "CT",
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",  # Enhanced CT
    "1.2.840.10008.5.1.4.1.1.128": "PT",
    "1.2.840.10008.5.1.4.1.1.130": "PT",  # Enhanced PET
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.12.1": "XA",
    "1.2.840.10008.5.1.4.1.1.13.1.1": "XA",  # X-Ray 3D Angiographic
}
SCAN_TYPES = {
    "MR": "xnat:mrScanData",
    "CT": "xnat:ctScanData",
    "PT": "xnat:petScanData",
    "CR": "xnat:crScanData",
    "XA": "xnat:xaScanData",
}
SESSION_TYPES = {
    "MR": "xnat:mrSessionData",
    "CT": "xnat:ctSessionData",
    "PT": "xnat:petSessionData",
    "CR": "xnat:crSessionData",
    "XA": "xnat:xaSessionData",
}
PET_MR_SETTINGS = ("petmr", "pet")


def scan_modality(modality: str, sop_class: str) -> str:
    """The modality a series counts as: its Modality tag, else what its SOP class implies."""
    modality = modality.strip().upper()
    return modality or SOP_MODALITY.get(sop_class, "")


def scan_type(modality: str, sop_class: str) -> str:
    if sop_class.startswith(SC_SOP_PREFIX):
        return "xnat:scScanData"
    if sop_class == RT_STRUCT_SOP or modality == "RTSTRUCT":
        return "xnat:rtImageScanData"
    return SCAN_TYPES.get(modality, "xnat:otherDicomScanData")


def session_type(modalities: set[str], pet_mr: str = "petmr") -> tuple[str, str]:
    """(xsiType, modality) of a session whose series have `modalities`."""
    if "PT" in modalities:
        if "MR" in modalities and pet_mr == "petmr":
            return "xnat:petmrSessionData", "PT"
        return SESSION_TYPES["PT"], "PT"
    for modality in ("MR", "CT", "XA", "CR"):
        if modality in modalities:
            return SESSION_TYPES[modality], modality
    first = sorted(modalities)[0] if modalities else ""
    return "xnat:otherDicomSessionData", first


def modality_code(scan_xsi_type: str) -> str:
    """`PrearcSessionArchiver.correctScanID`'s code: two letters after `xnat:`, PE -> PT."""
    if not scan_xsi_type.startswith("xnat:"):
        return ""
    code = scan_xsi_type[5:7].upper()
    return "PT" if code == "PE" else code
