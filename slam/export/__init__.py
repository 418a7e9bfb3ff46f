"""Exports of a run to other tools' formats (``slam export``)."""
