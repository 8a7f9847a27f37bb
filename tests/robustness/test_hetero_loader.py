"""The hetero dataset loader refuses incomplete tables with one clear error."""

from __future__ import annotations

import pandas as pd
import pytest

from cryoframe._errors import InputError
from cryoframe.hetero.dataset import load_dataset
from cryoframe.io.star import write_star


def test_missing_ctf_columns_are_named(tmp_path):
    write_star(tmp_path / "particles.star",
               {"particles": pd.DataFrame({"rlnImageName": ["1@x.mrcs"], "rlnDefocusU": [1e4]})})
    with pytest.raises(InputError) as ei:
        load_dataset(tmp_path)
    assert ei.value.field == "rlnDefocusV"
