"""Hostile input across every stage (issue 13): real awkward files, fuzzing, faults, names, tars."""
