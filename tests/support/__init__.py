"""Helpers the test modules share: no test lives here."""
