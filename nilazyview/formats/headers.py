"""Binary header layouts of Analyze 7.5 (SPM2 flavour), NIfTI-1 and NIfTI-2."""

from __future__ import annotations

import numpy as np

_COMMON_HEAD = [
    ("sizeof_hdr", "i4"),
    ("data_type", "S10"),
    ("db_name", "S18"),
    ("extents", "i4"),
    ("session_error", "i2"),
    ("regular", "S1"),
]

# Analyze 7.5 as SPM2 uses it: funused1/2 hold scl_slope/scl_inter, originator the origin.
ANALYZE = np.dtype(
    [
        *_COMMON_HEAD,
        ("hkey_un0", "S1"),
        ("dim", "i2", (8,)),
        ("vox_units", "S4"),
        ("cal_units", "S8"),
        ("unused1", "i2"),
        ("datatype", "i2"),
        ("bitpix", "i2"),
        ("dim_un0", "i2"),
        ("pixdim", "f4", (8,)),
        ("vox_offset", "f4"),
        ("scl_slope", "f4"),
        ("scl_inter", "f4"),
        ("funused3", "f4"),
        ("cal_max", "f4"),
        ("cal_min", "f4"),
        ("compressed", "i4"),
        ("verified", "i4"),
        ("glmax", "i4"),
        ("glmin", "i4"),
        ("descrip", "S80"),
        ("aux_file", "S24"),
        ("orient", "S1"),
        ("origin", "i2", (5,)),
        ("generated", "S10"),
        ("scannum", "S10"),
        ("patient_id", "S10"),
        ("exp_date", "S10"),
        ("exp_time", "S10"),
        ("hist_un0", "S3"),
        ("views", "i4"),
        ("vols_added", "i4"),
        ("start_field", "i4"),
        ("field_skip", "i4"),
        ("omax", "i4"),
        ("omin", "i4"),
        ("smax", "i4"),
        ("smin", "i4"),
    ]
)

NIFTI1 = np.dtype(
    [
        *_COMMON_HEAD,
        ("dim_info", "u1"),
        ("dim", "i2", (8,)),
        ("intent_p1", "f4"),
        ("intent_p2", "f4"),
        ("intent_p3", "f4"),
        ("intent_code", "i2"),
        ("datatype", "i2"),
        ("bitpix", "i2"),
        ("slice_start", "i2"),
        ("pixdim", "f4", (8,)),
        ("vox_offset", "f4"),
        ("scl_slope", "f4"),
        ("scl_inter", "f4"),
        ("slice_end", "i2"),
        ("slice_code", "u1"),
        ("xyzt_units", "u1"),
        ("cal_max", "f4"),
        ("cal_min", "f4"),
        ("slice_duration", "f4"),
        ("toffset", "f4"),
        ("glmax", "i4"),
        ("glmin", "i4"),
        ("descrip", "S80"),
        ("aux_file", "S24"),
        ("qform_code", "i2"),
        ("sform_code", "i2"),
        ("quatern_b", "f4"),
        ("quatern_c", "f4"),
        ("quatern_d", "f4"),
        ("qoffset_x", "f4"),
        ("qoffset_y", "f4"),
        ("qoffset_z", "f4"),
        ("srow_x", "f4", (4,)),
        ("srow_y", "f4", (4,)),
        ("srow_z", "f4", (4,)),
        ("intent_name", "S16"),
        ("magic", "S4"),
    ]
)

NIFTI2 = np.dtype(
    [
        ("sizeof_hdr", "i4"),
        ("magic", "S8"),
        ("datatype", "i2"),
        ("bitpix", "i2"),
        ("dim", "i8", (8,)),
        ("intent_p1", "f8"),
        ("intent_p2", "f8"),
        ("intent_p3", "f8"),
        ("pixdim", "f8", (8,)),
        ("vox_offset", "i8"),
        ("scl_slope", "f8"),
        ("scl_inter", "f8"),
        ("cal_max", "f8"),
        ("cal_min", "f8"),
        ("slice_duration", "f8"),
        ("toffset", "f8"),
        ("slice_start", "i8"),
        ("slice_end", "i8"),
        ("descrip", "S80"),
        ("aux_file", "S24"),
        ("qform_code", "i4"),
        ("sform_code", "i4"),
        ("quatern_b", "f8"),
        ("quatern_c", "f8"),
        ("quatern_d", "f8"),
        ("qoffset_x", "f8"),
        ("qoffset_y", "f8"),
        ("qoffset_z", "f8"),
        ("srow_x", "f8", (4,)),
        ("srow_y", "f8", (4,)),
        ("srow_z", "f8", (4,)),
        ("slice_code", "i4"),
        ("xyzt_units", "i4"),
        ("intent_code", "i4"),
        ("intent_name", "S16"),
        ("dim_info", "u1"),
        ("unused_str", "S15"),
    ]
)

assert ANALYZE.itemsize == 348 and NIFTI1.itemsize == 348 and NIFTI2.itemsize == 540

DTYPES = {"analyze": ANALYZE, "nifti1": NIFTI1, "nifti2": NIFTI2}
SINGLE_MAGIC = {"nifti1": b"n+1", "nifti2": b"n+2\x00\r\n\x1a\n"}
PAIR_MAGIC = {"nifti1": b"ni1", "nifti2": b"ni2\x00\r\n\x1a\n"}
