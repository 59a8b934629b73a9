"""``format: auto``: the format of every real sample detected from its header."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from pepmix.config import load_yaml
from pepmix.errors import ConfigError, InputFormatError
from pepmix.ingest import read_input
from pepmix.readers import FORMATS, get_reader, resolve_format
from pepmix.readers.detect import detect_format, matching_formats

DATA = Path(__file__).resolve().parents[1] / "data" / "formats"

# The format each sample is read with in tests/unit/test_readers_*.py.
EXPECTED = {
    "alphadia/AlphaDIA_1.10_sample.tsv": "alphadia",
    "diann/DIANN_1.9_beta_slice.tsv": "diann",
    "diann/entrapment_test_subset.report.parquet": "diann",
    "diann/msstatsconvert_diann_input.csv": "diann",
    "diann/quantmsio_PXD019909_head300.tsv": "diann",
    "fragpipe/FragPipe_MSFragger_combined_ion.tsv": "fragpipe",
    "fragpipe/Fragpipe_DIA_AIF_combined_ion_head800.tsv": "fragpipe",
    "maxquant/MaxDIA_slice.txt": "maxquant_evidence",
    "maxquant/MaxQuant_2_5_1_evidence_slice.txt": "maxquant_evidence",
    "maxquant/MaxQuant_evidence_sample.txt": "maxquant_evidence",
    "maxquant/mq_peptides_head300.txt": "maxquant_peptides",
    "msstats/MSstats_DDARawData_slice.csv": "msstats",
    "msstats/msstatsconvert_fragpipe_MSstats.csv": "msstats",
    "msstats/msstatsconvert_pd_output.csv": "msstats",
    "msstats/msstatsconvert_progenesis_output.csv": "msstats",
    "msstats/msstatsconvert_skyline_output.csv": "msstats",
    "openms_quantms/MSstatsConverter_1_out_slice.csv": "openms",
    "openms_quantms/PXD040438_msstats_in_slice.csv": "openms",
    "openms_quantms/ProteomicsLFQ_1_out.msstats.csv": "openms",
    "openms_quantms/ProteomicsLFQ_1_out.mzTab": "openms",
    "progenesis/msstatsconvert_progenesis_input.csv": "progenesis",
    "proteome_discoverer/PeptideGroups_slice.txt": "proteome_discoverer",
    "proteome_discoverer/msstatsconvert_pd_input.csv": "proteome_discoverer",
    "sage/sage_lfq_head800.tsv": "sage",
    "skyline/MSstats_DDARawData.Skyline_slice.csv": "skyline",
    "skyline/msstatsconvert_skyline_input_slice.csv": "skyline",
    "spectronaut/msstatsconvert_spectronaut_slice.csv": "spectronaut",
    "spectronaut/spectronaut_compact_fragments.tsv": "spectronaut",
}


def test_every_sample_is_listed() -> None:
    samples = {
        str(p.relative_to(DATA))
        for p in DATA.rglob("*")
        if p.is_file() and p.suffix not in (".md", ".py") and p.parent.name != "sdrf"
    }
    assert samples == set(EXPECTED)


@pytest.mark.parametrize(("name", "fmt"), sorted(EXPECTED.items()))
def test_sample_detected_as_its_format(name: str, fmt: str) -> None:
    assert detect_format(DATA / name) == fmt


@pytest.mark.parametrize(
    "name",
    [
        "maxquant/MaxQuant_evidence_sample.txt",
        "openms_quantms/ProteomicsLFQ_1_out.msstats.csv",
        "progenesis/msstatsconvert_progenesis_input.csv",
        "diann/entrapment_test_subset.report.parquet",
    ],
)
def test_auto_reads_what_the_explicit_format_reads(name: str) -> None:
    path = str(DATA / name)
    auto = read_input({"name": "b", "format": "auto", "path": path})
    explicit = read_input({"name": "b", "format": EXPECTED[name], "path": path})
    pd.testing.assert_frame_equal(auto, explicit)


def test_explicit_format_wins() -> None:
    # an OpenMS MSstats CSV is detected as openms (MSstats columns + Reference) ...
    path = DATA / "openms_quantms/MSstatsConverter_1_out_slice.csv"
    assert matching_formats([pd.read_csv(path, nrows=0).columns.tolist()]) == [
        "openms",
        "msstats",
    ]
    # ... but an explicit format is used as given, without looking at the file
    assert resolve_format("msstats", path) == "msstats"
    assert get_reader("msstats", path).__module__ == "pepmix.readers.msstats"
    assert get_reader("auto", path).__module__ == "pepmix.readers.openms"


def test_generic_long_gzipped_and_mangled_names(tmp_path: Path) -> None:
    gz = tmp_path / "long.csv.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write("Protein,Peptide,Run,Intensity\nP1,AAK,r1,10\nP1,AAK,r2,12\n")
    assert detect_format(gz) == "generic_long"
    plain = tmp_path / "long.tsv"
    plain.write_text("protein\tpeptide\trun\tintensity\nP1\tAAK\tr1\t10\n")
    table = read_input({"name": "b", "format": "auto", "path": str(plain)})
    assert list(table["run"]) == ["r1"]
    # column names compared ignoring case, spaces, dots and underscores
    mangled = tmp_path / "mangled.csv"
    mangled.write_text("Protein.Group,modified_sequence,PRECURSOR.CHARGE,q value\nP1,AAK,2,0.001\n")
    assert detect_format(mangled) == "diann"


def test_undetectable_and_ambiguous_headers(tmp_path: Path) -> None:
    wide = tmp_path / "wide.tsv"
    wide.write_text("identifier\tA_1\tA_2\nP1--AAK\t10\t12\n")
    with pytest.raises(InputFormatError) as err:
        detect_format(wide)
    message = str(err.value)
    assert str(wide) in message and "identifier, A_1, A_2" in message
    assert "explicitly" in message and "\n" not in message
    both = tmp_path / "both.tsv"
    both.write_text(
        "protein\tpeptide\trun\tintensity\tProtein.Group\tModified.Sequence\t"
        "Precursor.Charge\tQ.Value\nP1\tAAK\tr1\t1\tP1\tAAK\t2\t0\n"
    )
    with pytest.raises(InputFormatError, match=r"several formats \(diann, generic_long\)"):
        detect_format(both)
    with pytest.raises(InputFormatError, match="file not found"):
        detect_format(tmp_path / "missing.tsv")
    with pytest.raises(ConfigError, match=r"known formats: .*auto"):
        get_reader("maxqaunt")


def test_schema_lists_every_format(repo: Path) -> None:
    schema = load_yaml(repo / "workflow/schemas/config.schema.yaml")
    enum = schema["properties"]["inputs"]["items"]["properties"]["format"]["enum"]
    assert set(enum) == {*FORMATS, "auto"}
