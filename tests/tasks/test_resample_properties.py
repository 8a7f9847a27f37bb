"""Property tests (hypothesis) of the resampling plan and the contrast sign."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cryoframe._errors import InputError
from cryoframe.fourier.contrast import contrast_relation
from cryoframe.fourier.resample import plan_resample, resample_volumes


@settings(max_examples=150, deadline=None)
@given(box=st.integers(4, 200), px_in=st.floats(0.3, 30.0), px_out=st.floats(0.3, 30.0),
       box_out=st.integers(4, 64))
def test_plan_is_exact_within_tolerance_or_refused(box, px_in, px_out, box_out):
    try:
        plan = plan_resample(box, px_in, px_out, box_out)
    except InputError as exc:
        assert exc.field == "voxel size"
        return
    assert plan.sampling_error <= 0.01 + 1e-12
    assert plan.crop_in <= box and plan.resized >= max(2, box_out // 4)
    err = abs(plan.crop_in * px_in - plan.resized * plan.pixel_out_angstrom)
    assert err < 1e-6 * plan.crop_in * px_in  # the kept extent is preserved exactly


@settings(max_examples=20, deadline=None)
@given(n=st.integers(6, 20), c=st.floats(0.5, 5.0), sign=st.sampled_from([-1.0, 1.0]))
def test_centre_blob_stays_centred_and_sign_is_found(n, c, sign):
    ax = torch.arange(n, dtype=torch.float32) - n // 2
    r2 = ax[:, None, None] ** 2 + ax[None, :, None] ** 2 + ax[None, None, :] ** 2
    blob = torch.exp(-r2 / (2 * (0.15 * n) ** 2))
    plan = plan_resample(n, 1.0, 1.0, n + 3)
    out = resample_volumes(blob, plan)
    m = out.shape[-1]
    assert int(out.argmax()) == (m // 2) * m * m + (m // 2) * m + m // 2
    rel = contrast_relation(sign * c * blob, blob)
    assert rel.sign == int(sign)
