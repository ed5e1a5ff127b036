"""A minute of mixed load and every fault once on two gateways and two workers (``python -m bench
chaos --minutes 1``, where a run shorter than a cycle spreads the faults over it): every invariant
must hold."""

from __future__ import annotations

from pathlib import Path

from bench import chaos


def test_a_minute_of_load_and_every_fault_keeps_every_invariant(tmp_path: Path) -> None:
    checks, ledger = chaos.run(1.0, tmp_path)
    assert len(ledger.faults) == 6, ledger.faults
    assert ledger.jobs and ledger.refused_names, "jobs were accepted, and some refused during the faults"
    broken = [f"{check.invariant}: {check.measured}" for check in checks if not check.holds]
    assert not broken, broken
