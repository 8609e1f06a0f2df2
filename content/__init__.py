"""Reads the marketers' files (cadences/*.yaml, templates/) into core's models. Imports core only."""
