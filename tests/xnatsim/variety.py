"""DICOM as real archives hold it, written with pydicom for the import and transfer tests.

Each `Variant` is one kind of object found in the field: another transfer syntax (implicit VR,
explicit big endian, deflated, encapsulated JPEG / JPEG 2000 / RLE fragments), a raw data set
without preamble or file meta, a multi-frame or non-image SOP class, or non-ASCII values with
private tags and sequences. `variant_bytes` writes one instance of it; `variant_zip` writes a
zip of several. Encapsulated pixel data is a valid encapsulation (basic offset table, items,
sequence delimiter) of bytes that need not decode: import and anonymization must carry it
through unchanged, never decode it.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

ROOT = "1.2.826.0.1.3680043.10.998."
MR = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
RT_STRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
CT = "1.2.840.10008.5.1.4.1.1.2"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def uid(*parts: object) -> str:
    digest = int(hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()[:20], 16)
    return ROOT + str(digest)


@dataclass(frozen=True)
class Variant:
    """One kind of real-world DICOM object.

    `syntax` is the transfer syntax written (and the one XNAT keeps); `raw` writes the data set
    alone, without preamble and file meta; `scan_xsi` is the scan type XNAT gives its series.
    """

    key: str
    sop_class: str
    modality: str
    syntax: str
    scan_xsi: str
    fill: Callable[[Dataset, int], None]
    raw: bool = False
    description: str = ""
    charset: str = ""
    patient_name: str = "VARIETY"


def _image(ds: Dataset, instance: int, *, frames: int = 1, bits: int = 16) -> None:
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    size = 16 * frames * bits // 8
    ds.PixelData = bytes((instance * 7 + i) % 256 for i in range(size))


def _native(ds: Dataset, instance: int) -> None:
    _image(ds, instance)


def _fragments(marker: bytes, end: bytes) -> Callable[[Dataset, int], None]:
    """Encapsulated pixel data of two frames, each split in two fragments, with an offset
    table: fragment boundaries must survive import as sent."""

    def fill(ds: Dataset, instance: int) -> None:
        _image(ds, instance, frames=2, bits=8)
        body = bytes((instance + i) % 256 for i in range(10))
        frames = [marker + body + end, marker + body[::-1] + end]
        ds.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=True)
        ds["PixelData"].VR = "OB"
        ds.LossyImageCompression = "01" if marker == b"\xff\xd8" else "00"

    return fill


def _rle(ds: Dataset, instance: int) -> None:
    _image(ds, instance, bits=8)
    # An RLE segment header (one segment at offset 64) and a literal run of the 16 pixels.
    header = (1).to_bytes(4, "little") + (64).to_bytes(4, "little") + bytes(56)
    run = bytes([15]) + bytes((instance + i) % 256 for i in range(16)) + b"\x00"
    ds.PixelData = encapsulate([header + run], has_bot=True)
    ds["PixelData"].VR = "OB"


def _enhanced(ds: Dataset, instance: int) -> None:
    _image(ds, instance, frames=3)
    shared = Dataset()
    measures = Dataset()
    measures.PixelSpacing = [1, 1]
    measures.SliceThickness = 2
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for n in range(3):
        item = Dataset()
        content = Dataset()
        content.StackID = "1"
        content.InStackPositionNumber = n + 1
        item.FrameContentSequence = Sequence([content])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]


def _secondary(ds: Dataset, instance: int) -> None:
    _image(ds, instance, bits=8)
    ds.ConversionType = "WSD"


def _pdf(ds: Dataset, instance: int) -> None:
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.DocumentTitle = f"Report {instance}"
    ds.EncapsulatedDocument = PDF + bytes(len(PDF) % 2)
    ds.BurnedInAnnotation = "NO"


def _rtstruct(ds: Dataset, instance: int) -> None:
    ds.StructureSetLabel = f"RTS{instance}"
    roi = Dataset()
    roi.ROINumber = 1
    roi.ROIName = "Brain"
    roi.ReferencedFrameOfReferenceUID = uid("frame")
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = Sequence([roi])
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = 3
    contour.ContourData = [0, 0, 0, 1, 0, 0, 0, 1, 0]
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 1
    roi_contour.ContourSequence = Sequence([contour])
    ds.ROIContourSequence = Sequence([roi_contour])


def _private(ds: Dataset, instance: int) -> None:
    """Native pixels plus a private block (creator and values) and a nested sequence."""
    _image(ds, instance)
    block = ds.private_block(0x0029, "XNATCTL TEST", create=True)
    block.add_new(0x10, "LO", "private value")
    block.add_new(0x11, "OB", b"\x01\x02\x03\x04")
    code = Dataset()
    code.CodeValue = "T-A0100"
    code.CodingSchemeDesignator = "SRT"
    code.CodeMeaning = "Brain"
    ds.AnatomicRegionSequence = Sequence([code])


VARIANTS: tuple[Variant, ...] = (
    Variant("implicit", MR, "MR", ImplicitVRLittleEndian, "xnat:mrScanData", _native),
    Variant("bigendian", CT, "CT", ExplicitVRBigEndian, "xnat:ctScanData", _native),
    Variant("deflated", MR, "MR", DeflatedExplicitVRLittleEndian, "xnat:mrScanData", _native),
    Variant(
        "jpeg",
        SECONDARY_CAPTURE,
        "OT",
        JPEGBaseline8Bit,
        "xnat:scScanData",
        _fragments(b"\xff\xd8", b"\xff\xd9"),
    ),
    Variant(
        "jpeg2000",
        MR,
        "MR",
        JPEG2000Lossless,
        "xnat:mrScanData",
        _fragments(b"\xff\x4f\xff\x51", b"\xff\xd9"),
    ),
    Variant("rle", CT, "CT", RLELossless, "xnat:ctScanData", _rle),
    Variant("raw_explicit", MR, "MR", ExplicitVRLittleEndian, "xnat:mrScanData", _native, True),
    Variant("raw_implicit", MR, "MR", ImplicitVRLittleEndian, "xnat:mrScanData", _native, True),
    Variant("enhanced", ENHANCED_MR, "MR", ExplicitVRLittleEndian, "xnat:mrScanData", _enhanced),
    Variant(
        "secondary", SECONDARY_CAPTURE, "OT", ExplicitVRLittleEndian, "xnat:scScanData", _secondary
    ),
    Variant(
        "pdf", ENCAPSULATED_PDF, "DOC", ExplicitVRLittleEndian, "xnat:otherDicomScanData", _pdf
    ),
    Variant(
        "rtstruct", RT_STRUCT, "RTSTRUCT", ExplicitVRLittleEndian, "xnat:rtImageScanData", _rtstruct
    ),
    Variant(
        "latin1",
        MR,
        "MR",
        ExplicitVRLittleEndian,
        "xnat:mrScanData",
        _private,
        description="Schädel axial",
        charset="ISO_IR 100",
        patient_name="Müller^Jürgen",
    ),
    Variant(
        "utf8",
        MR,
        "MR",
        ImplicitVRLittleEndian,
        "xnat:mrScanData",
        _private,
        description="Tête 頭部",
        charset="ISO_IR 192",
        patient_name="山田^太郎",
    ),
)
BY_KEY = {v.key: v for v in VARIANTS}


def dataset(variant: Variant, *, study: str, series: int, instance: int) -> Dataset:
    """The data set (with file meta unless raw) of one instance of `variant`."""
    ds = Dataset()
    if variant.charset:
        ds.SpecificCharacterSet = variant.charset
    ds.SOPClassUID = variant.sop_class
    ds.SOPInstanceUID = uid(study, series, instance)
    ds.StudyInstanceUID = uid(study)
    ds.SeriesInstanceUID = uid(study, series)
    ds.FrameOfReferenceUID = uid("frame")
    ds.Modality = variant.modality
    ds.SeriesNumber = series
    ds.SeriesDescription = variant.description or variant.key
    ds.InstanceNumber = instance
    ds.PatientName = variant.patient_name
    ds.PatientID = "VARIETY_ID"
    ds.StudyID = "1"
    ds.StudyDate = "20240304"
    ds.StudyTime = "101500"
    variant.fill(ds, instance)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = variant.syntax
    ds.file_meta = meta
    return ds


def variant_bytes(variant: Variant, *, study: str, series: int, instance: int) -> bytes:
    """One instance of `variant`, encoded as its transfer syntax says."""
    ds = dataset(variant, study=study, series=series, instance=instance)
    out = io.BytesIO()
    if variant.raw:
        syntax = ds.file_meta.TransferSyntaxUID
        del ds.file_meta
        ds.save_as(
            out,
            implicit_vr=syntax.is_implicit_VR,
            little_endian=syntax.is_little_endian,
            enforce_file_format=False,
        )
    else:
        ds.preamble = b"\0" * 128
        ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def variant_zip(
    out: Path, variants: list[Variant], *, study: str, instances: int = 2
) -> dict[str, bytes]:
    """A zip of `instances` files of each variant (series numbered 1, 2, ... in order).

    Returns entry name -> bytes as written.
    """
    entries: dict[str, bytes] = {}
    for series, variant in enumerate(variants, start=1):
        for instance in range(1, instances + 1):
            name = f"{study}/{variant.key}/{variant.key}-{instance}.dcm"
            entries[name] = variant_bytes(variant, study=study, series=series, instance=instance)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return entries
