"""Full-path bank store: rows carry their bank class, batches are reproducible, SNR is per sample."""

import pytest
import torch

from cryoframe.simulate.class_bank import ClassBank
from cryoframe.train.fullpath_bank import FullPathBankSource, build_fullpath_bank_store


def _bank(n: int = 5, size: int = 16) -> ClassBank:
    z, y, x = torch.meshgrid(*[torch.arange(float(size)) - size // 2] * 3, indexing="ij")
    dens = [torch.exp(-(z**2 / (2 + k) + y**2 / 4 + x**2 / (1 + 0.5 * k))) for k in range(n)]
    return ClassBank(dens, [f"c{k}" for k in range(n)])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("bank") / "bank.zarr"
    return build_fullpath_bank_store(_bank(), path, 4, seed=3, classes_per_unit=3,
                                     shape_zyx_px=(48, 96, 96))


def test_rows_name_bank_classes_from_unit_subsets(store):
    src = FullPathBankSource(store, seed=0)
    table = store.read_table()
    assert len(src) == len(table) == 20
    names = [f"c{k}" for k in range(5)]
    assert src.class_names == names
    # the label is the bank index of the row's class name, not the subset index
    assert [names[i] for i in src.labels.tolist()] == [str(c) for c in table["class_name"]]
    assert len(set(table["class_name"])) <= 3  # one unit of 20 rows: one subset of 3 classes


def test_batches_are_reproducible_and_standardised(store):
    src = FullPathBankSource(store, seed=0)
    snrs = torch.tensor([100.0, 0.01, 100.0, 0.01])
    a, b = src.batch(7, 4, snrs), src.batch(7, 4, snrs)
    assert torch.equal(a["volumes"], b["volumes"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["volumes"], src.batch(8, 4, snrs)["volumes"])
    v = a["volumes"].reshape(4, -1)
    assert torch.allclose(v.mean(1), torch.zeros(4), atol=1e-4)
    assert torch.allclose(v.std(1), torch.ones(4), atol=1e-2)
