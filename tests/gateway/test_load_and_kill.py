"""The CI leg of the load-and-fault run (bench/load): 2 replicas (`clonegate serve --workers 2`)
on PostgreSQL, 4 clients for 30 s, one worker killed with SIGKILL mid-run and replaced by the
supervisor; afterwards the audit log checks, every admitted request has exactly one outcome,
every 200 its `released` event, the grant's uses equal the released requests, and no request
saw a server error unless it was in flight on the killed worker."""

from __future__ import annotations

import pytest

from bench.load.harness import check, drive, seed
from gateway.settings import Settings
from tests.gateway.conftest import free_port

pytestmark = pytest.mark.postgres


def test_two_replicas_one_killed_keep_the_books(tmp_path, loaded_models, speech_dir, postgres_databases):
    settings = Settings(mode="dev", data_dir=tmp_path / "data", database_url=postgres_databases.migrated())
    seeded = seed(settings, speech_dir=speech_dir, models=loaded_models)
    run = drive(
        settings, seeded, replicas=2, clients=4, seconds=30, kill_at=10, port=free_port(), log=tmp_path / "serve.log"
    )
    result = check(settings, seeded, run)
    assert run.killed_pid is not None
    assert result["problems"] == dict.fromkeys(result["problems"], 0), (
        result,
        (tmp_path / "serve.log").read_text()[-4000:],
    )
    assert result["released"] > 0
    assert result["abandoned_reasons"].keys() <= {"gateway_restarted", "lease_expired"}
