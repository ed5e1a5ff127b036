"""Two minutes of mixed load and faults on two gateways and two workers (``python -m bench chaos``):
every invariant must hold."""

from __future__ import annotations

from pathlib import Path

from bench import chaos


def test_two_minutes_of_load_and_faults_keep_every_invariant(tmp_path: Path) -> None:
    checks, ledger = chaos.run(2.0, tmp_path)
    assert len(ledger.faults) == 6, ledger.faults
    assert ledger.jobs and ledger.refused_names, "jobs were accepted, and some refused during the faults"
    broken = [f"{check.invariant}: {check.measured}" for check in checks if not check.holds]
    assert not broken, broken
