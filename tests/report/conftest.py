"""One quick digits audit shared by the report tests (package scope: it takes about a minute)."""

import pytest

from sslaudit.cli.main import main


@pytest.fixture(scope="package")
def digits_audit(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "digits"
    assert main(["audit", "--data", "digits", "--epochs", "1", "--quick", "--out", str(out), "--quiet"]) == 0
    return out
