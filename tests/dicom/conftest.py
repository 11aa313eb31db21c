"""Real DICOM files from pydicom's wheel (always download=False: a miss must fail at once,
not retry the network) and helpers that arrange them into study folders."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from radreport.data.settings import DicomSettings


def _testdata(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    assert path is not None, f"{name} is missing from pydicom's bundled test files"
    return Path(path)


@pytest.fixture
def testdata() -> Callable[[str], Path]:
    return _testdata


@pytest.fixture
def series_files() -> Callable[[str], list[Path]]:
    """All files of a dicomdirtests series folder, e.g. '98892001/CT5N'."""
    first = {"98892001/CT5N": "2062", "77654033/CT2": "17106", "98892001/CT2N": "6293"}
    return lambda name: sorted(_testdata(f"dicomdirtests/{name}/{first[name]}").parent.iterdir())


@pytest.fixture
def copy_into() -> Callable[..., list[Path]]:
    def copy(folder: Path, *sources: Path) -> list[Path]:
        folder.mkdir(parents=True, exist_ok=True)
        targets = [folder / f"{source.parent.name}_{source.name}" for source in sources]
        for source, target in zip(sources, targets, strict=True):
            shutil.copyfile(source, target)
        return targets

    return copy


@pytest.fixture
def broken_files(tmp_path: Path) -> dict[str, Path]:
    """A zero-byte file, a PNG picture and a text file, each named .dcm."""
    folder = tmp_path / "broken"
    folder.mkdir()
    empty = folder / "empty.dcm"
    empty.write_bytes(b"")
    picture = folder / "picture.dcm"
    with picture.open("wb") as handle:
        plt.imsave(handle, np.eye(8), format="png")
    text = folder / "notes.dcm"
    text.write_text("Patient list exported from the PACS.\nNothing to see here.\n")
    return {"empty": empty, "png": picture, "text": text}


@pytest.fixture
def permissive() -> DicomSettings:
    """Settings for pydicom's tiny series (5 slices) and single files, in-process."""
    return DicomSettings(min_slices=3, workers=1, depth=8, height=32, width=32)
