"""Tests of the governed lifecycle core (governance/)."""
