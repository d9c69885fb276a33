"""Tests; see README.md for what runs where."""
