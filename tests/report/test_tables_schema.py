"""Every table an audit writes keeps the sample vocabulary (split/index/train_index, labels beside
them) and is documented, column by column, in docs/tables.md."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sslaudit
from sslaudit.data.samples import check_vocabulary, sample_roles, with_sample_columns

DOC = Path(__file__).resolve().parents[2] / "docs" / "tables.md"


def documented_tables() -> dict[str, list[tuple[str, bool]]]:
    """file → [(column, optional)] from docs/tables.md's `### `file`` headings and their tables."""
    out, current = {}, []
    for line in DOC.read_text().splitlines():
        if line.startswith("### "):
            current = re.findall(r"`([^`]+\.parquet)`", line)
            for f in current:
                out[f] = []
        elif current and (m := re.match(r"\| `([^`]+)` \| (.*) \|$", line)):
            for f in current:
                out[f].append((m.group(1), m.group(2).startswith("*optional*")))
    return out


def test_the_schema_page_parses():
    docs = documented_tables()
    assert {"krepes/landmarks.parquet", "influence/duplicates.parquet", "qscore/scores.parquet", "krepes/alignment_gap_kernel.parquet"} <= set(docs)
    assert all(cols for cols in docs.values())
    assert [c for c, _ in docs["krepes/landmarks.parquet"]] == ["split", "index", "label", "rank", "train_index", "train_label", "score", "sign"]


def test_every_audit_table_keeps_the_vocabulary_and_is_documented(digits_audit):
    docs = documented_tables()
    ds = sslaudit.load(digits_audit).dataset
    files = sorted(p for p in Path(digits_audit).rglob("*.parquet") if not {"cache", "parts"} & set(p.relative_to(digits_audit).parts))
    assert len(files) >= 9
    for path in files:
        rel = path.relative_to(digits_audit).as_posix()
        df = pd.read_parquet(path)
        assert rel in docs, f"{rel} is not documented in docs/tables.md"
        names = [c for c, _ in docs[rel]]
        assert [c for c in names if c in df.columns] == list(df.columns), f"{rel}: columns {list(df.columns)} vs docs {names}"
        assert {c for c, opt in docs[rel] if not opt} <= set(df.columns), rel
        assert check_vocabulary(df) == [], rel
        for label, index, split in sample_roles(df.columns):  # digits has labels: every sample's label rides along
            assert label in df.columns, (rel, label)
            for name, part in df.groupby(split) if split else [("train", df)]:
                s = ds.split(name)
                pos = pd.Index(s.index).get_indexer(part[index])
                assert (pos >= 0).all() and np.array_equal(part[label].to_numpy(), s.y[pos]), (rel, index)


def test_with_sample_columns_follows_each_index_column():
    ds = sslaudit.data.dataset.Dataset(
        "toy", "tabular", sslaudit.data.dataset.Split(np.zeros((3, 1)), np.array([5, 6, 7]), np.array([10, 11, 12])), sslaudit.data.dataset.Split(np.zeros((2, 1)), np.array([8, 9]), np.array([0, 1]))
    )
    df = pd.DataFrame({"split": ["test", "train"], "index": [1, 12], "train_index": [10, 99], "other_split": ["test", "test"], "other_index": [0, 1], "score": [0.5, 0.25]})
    out = with_sample_columns(df, ds)
    assert list(out.columns) == ["split", "index", "label", "train_index", "train_label", "other_split", "other_index", "other_label", "score"]
    assert out["label"].tolist() == [9, 7] and out["train_label"].tolist() == [5, -1] and out["other_label"].tolist() == [8, 9]
    unlabeled = sslaudit.data.dataset.Dataset("toy", "tabular", sslaudit.data.dataset.Split(np.zeros((3, 1))), sslaudit.data.dataset.Split(np.zeros((2, 1))))
    assert with_sample_columns(df, unlabeled) is df


@pytest.mark.parametrize(
    "columns, problem", [(["index", "score"], "`index` without `split`"), (["split", "index", "query_index"], "`query_index` without `query_split` (only `train_index` may omit its split)")]
)
def test_vocabulary_check_names_what_is_wrong(columns, problem):
    assert check_vocabulary(pd.DataFrame(columns=columns)) == [problem]
    assert check_vocabulary(pd.DataFrame(columns=["split", "index", "train_index", "query_split", "query_index"])) == []
