"""MLflow on a real PostgreSQL server (cluster.yaml's tracking store): a bad database URI is one line
naming the setting, before any compute."""

from __future__ import annotations

import pytest

from tests import postgres
from trainables import tracking

needs_postgres = pytest.mark.skipif(
    postgres.binaries() is None, reason="PostgreSQL binaries (initdb, postgres) absent: apt-get install -y postgresql"
)


@pytest.fixture(scope="module")
def database():
    with postgres.server() as uri:
        yield uri


@pytest.mark.slow
@needs_postgres
@pytest.mark.parametrize("fault", ["no server", "wrong database", "not a URI"])
def test_bad_database_uri_is_one_line_naming_the_setting_before_any_compute(database, fault, toy_data, tmp_path, capsys):
    from minimodel import cli
    from tests.test_faults import fault_spec
    from tests.ports import free_port

    uri = {
        "no server": f"postgresql://mlflow:secret@127.0.0.1:{free_port()}/mlflow",
        "wrong database": database.rsplit("/", 1)[0] + "/nope",
        "not a URI": "postgresql://mlflow@127.0.0.1:port/mlflow",
    }[fault]
    expected = {
        "no server": "Connection refused",
        "wrong database": 'database "nope" does not exist',
        "not a URI": "is not a database URI",
    }[fault]
    for argv, setting in (
        (["sweep", str(fault_spec(toy_data, tmp_path, tracking_uri=uri))], "tracking_uri"),
        (["ui", "--tracking-uri", uri], "--tracking-uri"),
    ):
        with pytest.raises(SystemExit) as done:
            cli.main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert done.value.code == 2 and len(err) == 1, err
        assert err[0].startswith(f"minimodel: error: {setting}: ") and expected in err[0] and "secret" not in err[0], err
    assert not (tmp_path / "runs").exists()  # stopped before the storage, Ray or any stage
    tracking.check_reachable(database)  # the right one passes
